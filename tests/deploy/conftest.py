"""Fixtures of the deploy/ checks: the checkers scripts/fetch_deploy_tools.sh puts in build."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from workers.settings import REPO_ROOT


@pytest.fixture(scope="session")
def deploy_tools() -> Path:
    """build/tools, filled by the fetch script (idempotent: `make test` has run it already)."""
    script = REPO_ROOT / "scripts" / "fetch_deploy_tools.sh"
    done = subprocess.run([script], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"{script} failed: {done.stdout.strip()} {done.stderr.strip()}")
    return REPO_ROOT / "build" / "tools"


@pytest.fixture(scope="session")
def promtool(deploy_tools: Path) -> Path:
    """Prometheus's promtool (Debian's build)."""
    return deploy_tools / "bin" / "promtool"


@pytest.fixture(scope="session")
def compose_schema(deploy_tools: Path) -> dict[str, Any]:
    """The Compose Specification's JSON Schema."""
    schema: dict[str, Any] = json.loads((deploy_tools / "compose_spec.json").read_text())
    return schema


@pytest.fixture(scope="session")
def prometheus_server(deploy_tools: Path) -> Path:
    """Prometheus's server binary (Debian's build), for the live scrape test."""
    return deploy_tools / "bin" / "prometheus"
