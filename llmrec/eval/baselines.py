"""Batch baselines scored over a binary user x item matrix: Pop, ItemKNN, EASE, content-only.

They read the same train split as the hybrid and give each user a score for every item; the
protocol code masks train items and ranks.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import sparse

__all__ = ["content_scores", "ease_weights", "itemknn_weights", "pop_scores"]

F64 = npt.NDArray[np.float64]


def pop_scores(x: sparse.csr_matrix) -> F64:
    """Interaction count of each item (one row, broadcast to every user)."""
    return np.asarray(x.sum(axis=0), dtype=np.float64).ravel()


def itemknn_weights(x: sparse.csr_matrix, k: int = 400) -> F64:
    """Cosine item-item similarity, zero diagonal, each target column keeping its top `k`."""
    xc = x.tocsc().astype(np.float64)
    norms = np.sqrt(np.asarray(xc.multiply(xc).sum(axis=0)).ravel())
    norms[norms == 0] = 1.0
    sim = (xc.T @ xc).toarray() / np.outer(norms, norms)
    np.fill_diagonal(sim, 0.0)
    if k < sim.shape[0]:
        cut = np.partition(sim, -k, axis=0)[-k, :]
        sim[sim < cut[None, :]] = 0.0
    return np.asarray(sim, dtype=np.float64)


def ease_weights(x: sparse.csr_matrix, lam: float = 100.0) -> F64:
    """EASE (Steck 2019): B = I - P / diag(P), P = (X'X + lam I)^-1, zero diagonal."""
    g = (x.T @ x).toarray().astype(np.float64)
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    b: F64 = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


def content_scores(x: sparse.csr_matrix, item_vectors: npt.NDArray[np.float32]) -> F64:
    """Cosine between each user's mean train item vector and every item vector."""
    profile = np.asarray(x @ item_vectors, dtype=np.float64)
    norms = np.linalg.norm(profile, axis=1, keepdims=True)
    profile /= np.where(norms > 0, norms, 1.0)
    return np.asarray(profile @ item_vectors.T.astype(np.float64), dtype=np.float64)
