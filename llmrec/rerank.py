"""Maximal marginal relevance: trade a list's relevance against its redundancy.

MMR picks, one at a time, the candidate maximising `lam * relevance - (1 - lam) * max cosine to
the items already picked`. `lam = 1` keeps the relevance order; lower values diversify.
Relevance is min-max scaled first so that `lam` means the same whatever the score's units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from llmrec.types import Vectors

__all__ = ["RerankConfig", "mmr", "mmr_batch"]


@dataclass(frozen=True, slots=True)
class RerankConfig:
    """MMR trade-off and how many top candidates it considers."""

    mmr_lambda: float = 0.9
    pool: int = 100


def mmr(scores: Sequence[float], vectors: Vectors, k: int, lam: float) -> list[int]:
    """Indices of `k` candidates in MMR order; `vectors` are unit rows aligned with `scores`."""
    return mmr_batch([(np.asarray(scores, dtype=np.float64), vectors)], k, lam)[0]


def mmr_batch(
    lists: Sequence[tuple[npt.NDArray[np.float64], Vectors]], k: int, lam: float
) -> list[list[int]]:
    """`mmr` of several (scores, vectors) lists at once: each step's gains and picks are one
    array operation over every list (padded to the longest); only the cosines to each list's
    new pick are one product per list, so that they are bit for bit those of `mmr` alone."""
    out: list[list[int]] = [[] for _ in lists]
    live = [n for n, (s, _) in enumerate(lists) if len(s) and k > 0]
    if not live:
        return out
    size = max(len(lists[n][0]) for n in live)
    rel = np.zeros((len(live), size))
    vecs: list[Vectors] = []
    for b, n in enumerate(live):
        s, v = lists[n]
        span = float(s.max() - s.min())
        rel[b, : len(s)] = (s - s.min()) / span if span > 0 else np.ones_like(s)
        vecs.append(np.asarray(v, dtype=np.float32))
    padding = np.arange(size) >= np.array([len(v) for v in vecs])[:, None]
    if lam >= 1.0:
        rel[padding] = -np.inf  # never picked
        order = np.argsort(-rel, axis=1, kind="stable")
        for b, n in enumerate(live):
            out[n] = order[b, : min(k, len(vecs[b]))].tolist()
        return out
    steps = min(k, size)
    relevance, penalty = lam * rel, 1.0 - lam
    relevance[padding] = -np.inf  # never picked
    rows = np.arange(len(live))
    picks = np.zeros((len(live), steps), dtype=np.int64)
    sims = np.zeros((len(live), size), dtype=np.float32)
    max_sim = np.zeros((len(live), size))  # cosine to the closest pick so far; none: no penalty
    for step in range(steps):
        gain = relevance - penalty * max_sim
        best = np.argmax(gain, axis=1)
        picks[:, step] = best
        relevance[rows, best] = -np.inf  # picked: never again (its gain is -inf from now on)
        for b, (v, j) in enumerate(zip(vecs, best.tolist(), strict=True)):
            sims[b, : len(v)] = v @ v[j]
        max_sim = sims.astype(np.float64) if step == 0 else np.maximum(max_sim, sims)
    for b, n in enumerate(live):
        out[n] = picks[b, : min(k, len(vecs[b]))].tolist()
    return out
