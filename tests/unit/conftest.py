"""Fixtures of the unit tests that need exported encoder artifacts (marker `model`).

The artifacts are built by `llmrec export-model` (the Makefile runs it before pytest when
`models/all-MiniLM-L6-v2/current/int8/manifest.json` is missing). Tests fail, not skip, when
they are absent: a silent skip would hide a broken export.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmrec.encoder import Encoder, EncoderConfig, load_encoder
from workers.settings import get_settings

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="session")
def model_root() -> Path:
    """The exported model root (settings model_dir / all-MiniLM-L6-v2), checked to exist."""
    root = get_settings().model_dir / "all-MiniLM-L6-v2"
    if not (root / "current" / "int8" / "manifest.json").is_file():
        pytest.fail(f"encoder artifacts missing under {root}; run `llmrec export-model`")
    return root


@pytest.fixture(scope="session")
def fp32_encoder(model_root: Path) -> Encoder:
    return load_encoder(model_root, "fp32", EncoderConfig(cache_size=0, intra_op_threads=2))


@pytest.fixture(scope="session")
def int8_encoder(model_root: Path) -> Encoder:
    return load_encoder(model_root, "int8", EncoderConfig(cache_size=0, intra_op_threads=2))


@pytest.fixture(scope="session")
def golden() -> dict[str, Any]:
    """Vectors of a few texts from sentence-transformers on PyTorch (tests/data)."""
    doc: dict[str, Any] = json.loads((DATA / "encoder_golden.json").read_text(encoding="utf-8"))
    return doc
