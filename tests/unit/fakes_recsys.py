"""Test doubles for the recommender core: a deterministic bag-of-words encoder."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

from llmrec.index import ItemIndex
from llmrec.types import Vectors

__all__ = ["HashingEncoder", "build_index"]


class HashingEncoder:
    """Hashes lower-cased words into `dim` buckets and L2-normalises: same words, same vector."""

    def __init__(self, dim: int = 64) -> None:
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                h = zlib.crc32(word.encode())
                out[row, h % self._dim] += 1.0 if (h >> 16) & 1 else -1.0
            norm = np.linalg.norm(out[row])
            if norm > 0:
                out[row] /= norm
            else:
                out[row, 0] = 1.0
        return out


def build_index(encoder: HashingEncoder, items: dict[str, str]) -> ItemIndex:
    """An ItemIndex holding `items` (id -> text) encoded by `encoder`."""
    index = ItemIndex(encoder.dim)
    ids = list(items)
    index.upsert(ids, encoder.encode([items[i] for i in ids]))
    return index
