"""Small protocols shared across the core, so components depend on shapes, not classes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["TextEncoder", "Vector", "Vectors"]

Vector = npt.NDArray[np.float32]
"""One L2-normalised embedding, shape (dim,)."""
Vectors = npt.NDArray[np.float32]
"""A batch of L2-normalised embeddings, shape (n, dim), rows in input order."""


class TextEncoder(Protocol):
    """What the core needs of an encoder: a dimension and a batch `encode`."""

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> Vectors: ...
