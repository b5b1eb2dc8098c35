"""Maximal marginal relevance: trade a list's relevance against its redundancy.

MMR picks, one at a time, the candidate maximising `lam * relevance - (1 - lam) * max cosine to
the items already picked`. `lam = 1` keeps the relevance order; lower values diversify.
Relevance is min-max scaled first so that `lam` means the same whatever the score's units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llmrec.types import Vectors

__all__ = ["RerankConfig", "mmr"]


@dataclass(frozen=True, slots=True)
class RerankConfig:
    """MMR trade-off and how many top candidates it considers."""

    mmr_lambda: float = 0.9
    pool: int = 100


def mmr(scores: Sequence[float], vectors: Vectors, k: int, lam: float) -> list[int]:
    """Indices of `k` candidates in MMR order; `vectors` are unit rows aligned with `scores`."""
    n = len(scores)
    if n == 0 or k <= 0:
        return []
    rel = np.asarray(scores, dtype=np.float64)
    span = float(rel.max() - rel.min())
    rel = (rel - rel.min()) / span if span > 0 else np.ones_like(rel)
    if lam >= 1.0:
        return [int(i) for i in np.argsort(-rel, kind="stable")[:k]]
    vecs = np.asarray(vectors, dtype=np.float32)
    relevance, penalty = lam * rel, 1.0 - lam
    max_sim = np.zeros(n)  # cosine to the closest pick so far (float64); none yet: no penalty
    chosen: list[int] = []
    for step in range(min(k, n)):
        gain = relevance - penalty * max_sim
        gain[chosen] = -np.inf
        best = int(np.argmax(gain))
        chosen.append(best)
        sims = vecs @ vecs[best]
        max_sim = sims.astype(np.float64) if step == 0 else np.maximum(max_sim, sims)
    return chosen
