"""Stage 5: the manifest next to each artifact and the atomic `current` pointer."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmrec.encoder.artifacts import MANIFEST, open_artifact, sha256_file
from llmrec.encoder.runtime import import_onnxruntime
from llmrec.exceptions import ModelArtifactError
from onnx_export import validate
from onnx_export.export import MODEL_NAME, OPSET, Source

__all__ = ["build_manifest", "is_valid", "write_manifest"]

FORMAT = 1


def build_manifest(
    source: Source,
    variant: str,
    model_path: Path,
    *,
    max_length: int,
    parity: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything needed to trust and reproduce one artifact."""
    return {
        "format": FORMAT,
        "model": MODEL_NAME,
        "version": source.version,
        "variant": variant,
        "file": model_path.name,
        "file_sha256": sha256_file(model_path),
        "source": {
            "package": source.package,
            "package_version": source.package_version,
            "weights_sha256": source.weights_sha256,
        },
        "opset": OPSET,
        "onnxruntime_version": import_onnxruntime().__version__,
        "max_length": max_length,
        "pooling": "mean over attention mask, L2-normalised (llmrec.encoder.pooling.mean_pool)",
        "parity": parity,
        "gate": {
            "passed": True,
            "thresholds": {
                "fp32_vs_torch_min_cosine": validate.FP32_MIN_COSINE,
                "int8_vs_fp32_mean_cosine": validate.INT8_MEAN_COSINE,
                "int8_vs_fp32_top10_overlap": validate.INT8_TOP10_OVERLAP,
            },
        },
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **({"tuning": dict(source.tuning)} if source.tuning else {}),
        **(extra or {}),
    }


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    """Write `folder/manifest.json` atomically (readers never see half a file)."""
    path = folder / MANIFEST
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def is_valid(folder: Path, version: str) -> bool:
    """True when `folder` holds a gated artifact of `version` whose file matches its sha256."""
    try:
        artifact = open_artifact(folder, verify_sha=True)
    except ModelArtifactError:
        return False
    gate = artifact.manifest.get("gate", {})
    return artifact.version == version and bool(gate.get("passed"))
