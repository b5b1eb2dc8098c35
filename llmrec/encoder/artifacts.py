"""Where exported encoder artifacts live and how the runtime finds the current one.

Layout under a model root (default `models/all-MiniLM-L6-v2/`):

    <root>/current -> <version>            symlink, switched atomically after a good export
    <root>/<version>/<variant>/manifest.json
    <root>/<version>/<variant>/<model file named in the manifest>
    <root>/<version>/<variant>/tokenizer.json

The manifest is the source of truth: it names the model file and records its sha256, the
source weights, opset, onnxruntime version and the quality-gate figures.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmrec.exceptions import ModelArtifactError
from llmrec.versions import CURRENT_LINK

__all__ = [
    "CURRENT_LINK",
    "MANIFEST",
    "TOKENIZER",
    "VARIANTS",
    "Artifact",
    "current_version",
    "find_artifact",
    "list_versions",
    "open_artifact",
    "read_manifest",
    "sha256_file",
]

VARIANTS = ("fp32", "opt", "int8", "fp16")
MANIFEST = "manifest.json"
TOKENIZER = "tokenizer.json"
_HINT = "run `llmrec export-model` to build it"


@dataclass(frozen=True, slots=True)
class Artifact:
    """One exported variant: its folder, model and tokenizer files, and its manifest."""

    folder: Path
    model_path: Path
    tokenizer_path: Path
    manifest: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def variant(self) -> str:
        return str(self.manifest["variant"])


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (model files are ~90 MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def current_version(model_root: Path) -> str:
    """The version the `current` pointer names; ModelArtifactError when there is none."""
    link = model_root / CURRENT_LINK
    if not link.exists():
        raise ModelArtifactError(
            f"no exported encoder under {model_root} (missing {link}); {_HINT}"
        )
    return link.resolve().name


def list_versions(model_root: Path) -> list[str]:
    """The version folders under `model_root` (not the `current` link, not hidden scratch)."""
    if not model_root.is_dir():
        return []
    return sorted(
        p.name
        for p in model_root.iterdir()
        if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
    )


def read_manifest(folder: Path) -> dict[str, Any]:
    """Load and sanity-check `folder/manifest.json`."""
    path = folder / MANIFEST
    if not path.is_file():
        raise ModelArtifactError(f"missing manifest {path}; {_HINT}")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelArtifactError(f"unreadable manifest {path}: {exc}; {_HINT}") from exc
    missing = {"version", "variant", "file", "file_sha256"} - manifest.keys()
    if missing:
        raise ModelArtifactError(f"manifest {path} lacks {sorted(missing)}; {_HINT}")
    return manifest


def find_artifact(
    model_root: Path, variant: str, *, version: str | None = None, verify_sha: bool = False
) -> Artifact:
    """Locate `variant` of `version` (default: the current one) under `model_root`.

    `verify_sha` re-hashes the model file against the manifest (the export does this before
    skipping work; serving skips it to start fast).
    """
    if variant not in VARIANTS:
        raise ModelArtifactError(f"unknown encoder variant {variant!r}; choose one of {VARIANTS}")
    if version is None:
        version = current_version(model_root)
    elif version not in list_versions(model_root):  # also refuses "..", "a/b" and the link
        known = ", ".join(list_versions(model_root)) or "none"
        raise ModelArtifactError(
            f"no encoder version {version!r} under {model_root} (have: {known}); {_HINT}"
        )
    return open_artifact(model_root / version / variant, verify_sha=verify_sha)


def open_artifact(folder: Path, *, verify_sha: bool = False) -> Artifact:
    """Open one variant folder (used by `find_artifact` and by the export's skip check)."""
    manifest = read_manifest(folder)
    model_path = folder / str(manifest["file"])
    tokenizer_path = folder / TOKENIZER
    for path in (model_path, tokenizer_path):
        if not path.is_file():
            raise ModelArtifactError(f"missing artifact file {path}; {_HINT}")
    if verify_sha and sha256_file(model_path) != manifest["file_sha256"]:
        raise ModelArtifactError(f"{model_path} does not match its manifest sha256; {_HINT}")
    return Artifact(folder, model_path, tokenizer_path, manifest)
