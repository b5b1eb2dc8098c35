"""Each extra set resolves to exactly one onnxruntime build (pip's own resolver, PyPI metadata,
the pins of deploy/constraints.txt): `cpu` the CPU one, `gpu` onnxruntime-gpu, and the build-time
extras (export, eval) pull neither, so `[gpu,export,eval]` never installs both."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workers.settings import REPO_ROOT

pytestmark = pytest.mark.slow

RUNTIMES = {"onnxruntime", "onnxruntime-gpu"}


def resolved(source: Path, extras: str, report: Path) -> set[str]:
    """The distributions `pip install '<source>[extras]'` would install into an empty env."""
    cmd = [
        sys.executable, "-m", "pip", "--disable-pip-version-check", "install", "--dry-run",
        "--ignore-installed", "--quiet", "--no-build-isolation", "--report", str(report),
        "-c", str(REPO_ROOT / "deploy" / "constraints.txt"), f"{source}[{extras}]",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"pip could not resolve [{extras}]:\n{done.stderr[-3000:]}"
    doc = json.loads(report.read_text(encoding="utf-8"))
    return {item["metadata"]["name"].lower() for item in doc["install"]}


@pytest.mark.parametrize(
    ("extras", "runtime"),
    [("cpu", "onnxruntime"), ("gpu", "onnxruntime-gpu"), ("gpu,export,eval", "onnxruntime-gpu")],
)
def test_extras_install_exactly_one_onnxruntime(
    source_copy: Path, tmp_path: Path, extras: str, runtime: str
) -> None:
    names = resolved(source_copy, extras, tmp_path / "report.json")
    assert "llmrec" in names
    assert names & RUNTIMES == {runtime}
