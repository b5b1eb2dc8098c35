"""A model-free text encoder: signed feature hashing of words, L2-normalised.

For running the pipeline without exported artifacts (`LLMREC_ENCODER_BACKEND=hashing`) and as
the deterministic encoder of unit tests. Same words give the same vector; no semantics beyond
shared words. A text without words maps to the first basis vector, so every row is a unit vector.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from llmrec.types import Vectors

__all__ = ["HashingEncoder"]

_WORD = re.compile(r"[a-z0-9\-]+")


class HashingEncoder:
    """Bag-of-words feature hashing into `dim` signed buckets; satisfies `TextEncoder`."""

    def __init__(self, dim: int = 384) -> None:
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[row, h % self._dim] += 1.0 if (h >> 32) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        empty = norms[:, 0] == 0
        out[empty, 0] = 1.0
        norms[empty] = 1.0
        unit: Vectors = out / norms
        return unit
