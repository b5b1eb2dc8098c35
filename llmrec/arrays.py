"""Small operations on integer label arrays, shared by retrieval and co-visitation."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["first_seen"]


def first_seen(labels: npt.NDArray[np.int64], top: int) -> npt.NDArray[np.int64]:
    """`labels` (each in [0, top)) without repeats, each kept where it first appears: one
    dense array of first positions, cheaper than a sort at a user's few hundred labels."""
    at = np.arange(len(labels))
    first = np.full(top, len(labels))
    np.minimum.at(first, labels, at)
    kept: npt.NDArray[np.int64] = labels[first[labels] == at]
    return kept
