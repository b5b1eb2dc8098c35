"""A copy of the installable source (no .git, caches or build outputs) for wheel and resolver
tests, so that building never writes build/ or egg-info into the checkout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from workers.settings import REPO_ROOT

SOURCE = ("pyproject.toml", "README.md", "LICENSE", "llmrec", "workers", "onnx_export")


def copy_source(dest: Path, pyproject: str | None = None) -> Path:
    """Copy what `pip wheel` needs from the checkout to `dest`; `pyproject` replaces its text."""
    dest.mkdir(parents=True, exist_ok=True)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCE:
        src = REPO_ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=skip)
        else:
            shutil.copy2(src, dest / name)
    if pyproject is not None:
        (dest / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    return dest


@pytest.fixture(scope="session")
def source_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_source(tmp_path_factory.mktemp("src") / "llmrec")
