"""Ranking metrics for one held-out item per user, exact under random tie-breaking.

A model's result for one user is an `Outcome`: how many candidate items score strictly above
the held-out item (`greater`) and how many other candidates tie with it (`ties`). Under a
uniformly random order among tied items the held-out item's 0-based rank is uniform on
`greater .. greater + ties`, so each metric is the exact expectation over that range: a tie is
neither a free hit nor a free miss. A ranked list (the hybrid's) has `ties = 0`; an item missing
from a list of length `DEPTH` gets `greater = DEPTH`, a miss at every cut-off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEPTH",
    "KS",
    "TIE_TOLERANCE",
    "Outcomes",
    "hit_rate",
    "mrr",
    "ndcg",
    "outcomes_from_scores",
    "per_user",
    "summarise",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
KS = (1, 5, 10, 20, 50)
DEPTH = max(KS)


@dataclass(frozen=True, slots=True)
class Outcomes:
    """Per-user (greater, ties) counts of the held-out item, users in one fixed order."""

    greater: I64
    ties: I64

    @classmethod
    def from_ranks(cls, ranks: Sequence[int]) -> Outcomes:
        """Strict 0-based ranks (no ties), e.g. positions in a published list."""
        g = np.asarray(ranks, dtype=np.int64)
        return cls(g, np.zeros_like(g))

    def __len__(self) -> int:
        return len(self.greater)

    def subset(self, mask: npt.NDArray[np.bool_]) -> Outcomes:
        return Outcomes(self.greater[mask], self.ties[mask])


def _expected(o: Outcomes, gain: F64) -> F64:
    """Mean of `gain[rank]` over each user's rank range (gain is 0 at and past its length)."""
    depth = len(gain)
    cum = np.concatenate([[0.0], np.cumsum(gain)])
    lo = np.minimum(o.greater, depth)
    hi = np.minimum(o.greater + o.ties + 1, depth)
    out: F64 = (cum[hi] - cum[lo]) / (o.ties + 1)
    return out


def per_user(o: Outcomes, metric: str, k: int) -> F64:
    """Each user's expected `metric` ("HR", "NDCG" or "MRR") at cut-off `k`."""
    ranks = np.arange(k, dtype=np.float64)
    gains = {"HR": np.ones(k), "NDCG": 1.0 / np.log2(ranks + 2.0), "MRR": 1.0 / (ranks + 1.0)}
    if metric not in gains:
        raise ValueError(f"unknown metric {metric!r}")
    return _expected(o, gains[metric])


def _mean(x: F64) -> float:
    return float(np.mean(x)) if len(x) else 0.0


def hit_rate(o: Outcomes, k: int) -> float:
    """Expected share of users whose held-out item is in the top `k`."""
    return _mean(per_user(o, "HR", k))


def ndcg(o: Outcomes, k: int) -> float:
    """Expected NDCG@k with one relevant item (1/log2(rank+2) inside the top k)."""
    return _mean(per_user(o, "NDCG", k))


def mrr(o: Outcomes, depth: int = DEPTH) -> float:
    """Expected reciprocal rank, truncated at `depth` (a miss below it counts 0)."""
    return _mean(per_user(o, "MRR", depth))


def summarise(o: Outcomes, ks: Sequence[int] = KS) -> dict[str, float]:
    """HR@k and NDCG@k for each k, MRR@max(k) and the user count, as one flat dict."""
    out: dict[str, float] = {"users": float(len(o)), "MRR": mrr(o, max(ks))}
    for k in ks:
        out[f"HR@{k}"] = hit_rate(o, k)
        out[f"NDCG@{k}"] = ndcg(o, k)
    return out


TIE_TOLERANCE = 1e-9
"""Scores closer than this, relative to the row's largest finite magnitude, are ties: models
computed through a decomposition (EASE) give mathematically equal scores rounding noise."""


def outcomes_from_scores(scores: F64, targets: I64, excluded: Sequence[I64]) -> Outcomes:
    """(greater, ties) of each row's target among the row's items minus its `excluded` ones.

    `scores` is (users, items). Excluded items are removed from the comparison (they are not
    candidates); -inf scores tie with each other; near-equal scores tie (`TIE_TOLERANCE`).
    """
    s = np.array(scores, dtype=np.float64, copy=True)
    rows = np.arange(len(s))
    for r, cols in enumerate(excluded):
        s[r, cols] = np.nan  # NaN compares false both ways: excluded from > and ==
    t = s[rows, targets][:, None]
    if np.isnan(t).any():
        raise ValueError("a held-out item is among its user's excluded items")
    finite = np.where(np.isfinite(s), np.abs(s), 0.0)
    tol = TIE_TOLERANCE * np.maximum(finite.max(axis=1, initial=0.0), 1e-300)[:, None]
    with np.errstate(invalid="ignore"):  # -inf - -inf
        tied = (s == t) | (np.abs(s - t) <= tol)
    greater = np.count_nonzero((s > t) & ~tied, axis=1)
    ties = np.count_nonzero(tied, axis=1) - 1
    return Outcomes(greater.astype(np.int64), ties.astype(np.int64))
