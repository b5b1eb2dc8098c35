"""The learned ranker: a LightGBM LambdaMART model over `FEATURES`, with its manifest.

The manifest names the features the model was trained on (a subset of `FEATURES`, so ablations
are just models over fewer columns), the hash of its training data, its validation metrics and
the library version. Scoring is one call over a matrix holding every candidate of every user in
the batch, through the model compiled to machine code by lleaves (LLVM; about 8x faster than
LightGBM's `predict` on a batch's few thousand rows, the same scores to within 1e-14), or
through LightGBM where lleaves is not installed or cannot compile the model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Any, Protocol

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from llmrec.exceptions import RankerArtifactError
from llmrec.ranker.features import FEATURES

__all__ = ["MANIFEST", "MODEL_FILE", "Ranker"]

log = logging.getLogger(__name__)

MODEL_FILE = "model.txt"
MANIFEST = "manifest.json"


class _Compiled(Protocol):
    def predict(self, data: npt.NDArray[np.float64], n_jobs: int) -> npt.NDArray[np.float64]: ...


def _compile(booster: lgb.Booster) -> _Compiled | None:
    """`booster` compiled by lleaves, or None (logged) where lleaves is missing or fails."""
    try:
        import lleaves
    except ImportError:
        return None
    try:
        with tempfile.TemporaryDirectory(prefix="llmrec-ranker-") as tmp:
            path = Path(tmp) / MODEL_FILE
            booster.save_model(str(path))  # lleaves reads LightGBM's model file
            model = lleaves.Model(model_file=str(path))
            model.compile()
    except Exception as exc:  # an LLVM or parser failure costs speed, never the ranker
        log.warning(
            "lleaves cannot compile the ranker (%s: %s); LightGBM predicts", type(exc).__name__, exc
        )
        return None
    compiled: _Compiled = model
    return compiled


class Ranker:
    """A trained booster plus the columns of `FEATURES` it reads."""

    def __init__(self, booster: lgb.Booster, manifest: dict[str, Any]) -> None:
        names = list(manifest["features"])
        unknown = [f for f in names if f not in FEATURES]
        if unknown:
            raise RankerArtifactError(f"ranker uses unknown features {unknown}")
        if booster.num_feature() != len(names):
            raise RankerArtifactError(
                f"ranker has {booster.num_feature()} inputs but names {len(names)} features"
            )
        self.booster = booster
        self.manifest = manifest
        self.columns = np.array([FEATURES.index(f) for f in names], dtype=np.int64)
        self._all_columns = self.columns.tolist() == list(range(len(FEATURES)))
        self.compiled = _compile(booster)

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    def score(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Scores of the rows of a full (rows x FEATURES) matrix; higher ranks first."""
        if x.shape[0] == 0:
            return np.zeros(0)
        cols = x if self._all_columns else x[:, self.columns]
        # One thread: the batches are small and thread start-up would cost more than it saves.
        if self.compiled is not None:
            return np.asarray(self.compiled.predict(cols.astype(np.float64), n_jobs=1))
        return np.asarray(self.booster.predict(cols, num_threads=1), dtype=np.float64)

    @classmethod
    def from_booster(cls, booster: lgb.Booster, features: list[str], **info: Any) -> Ranker:
        """Wrap a freshly trained booster; its version is a hash of the model text."""
        text = booster.model_to_string()
        version = hashlib.sha256(text.encode()).hexdigest()[:12]
        manifest = {
            "version": version,
            "features": features,
            "lightgbm": lgb.__version__,
            **info,
        }
        return cls(booster, manifest)

    def save(self, folder: Path) -> None:
        """Write the model and its manifest into `folder` (the manifest last)."""
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / MODEL_FILE))
        (folder / MANIFEST).write_text(json.dumps(self.manifest, indent=2, sort_keys=True))

    @classmethod
    def load(cls, folder: Path) -> Ranker:
        """Read a model saved by `save`; a missing or foreign file is a RankerArtifactError."""
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            booster = lgb.Booster(model_file=str(folder / MODEL_FILE))
        except (OSError, ValueError, lgb.basic.LightGBMError) as exc:
            raise RankerArtifactError(f"cannot load ranker from {folder}: {exc}") from exc
        return cls(booster, manifest)
