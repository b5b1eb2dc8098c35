"""The learned ranker: a LightGBM LambdaMART model over `FEATURES`, with its manifest.

The manifest names the features the model was trained on (a subset of `FEATURES`, so ablations
are just models over fewer columns), the hash of its training data, its validation metrics and
the library version. Scoring is one `predict` call over a matrix holding every candidate of
every user in the batch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from llmrec.exceptions import RankerArtifactError
from llmrec.ranker.features import FEATURES

__all__ = ["MANIFEST", "MODEL_FILE", "Ranker"]

MODEL_FILE = "model.txt"
MANIFEST = "manifest.json"


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

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    def score(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Scores of the rows of a full (rows x FEATURES) matrix; higher ranks first."""
        if x.shape[0] == 0:
            return np.zeros(0)
        # One thread: the batches are small and OpenMP start-up would cost more than it saves.
        out = self.booster.predict(x[:, self.columns], num_threads=1)
        return np.asarray(out, dtype=np.float64)

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
