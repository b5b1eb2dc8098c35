"""The local broker's Maven file and log4j configuration, shipped as package data so that
`llmrec kafka up` works from an installed wheel; deploy/kafka/ links here for the Makefile."""

from __future__ import annotations

from pathlib import Path

__all__ = ["LOG4J", "POM"]

_HERE = Path(__file__).resolve().parent
POM = _HERE / "pom.xml"
LOG4J = _HERE / "log4j.properties"
