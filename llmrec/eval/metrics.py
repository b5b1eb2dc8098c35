"""Ranking metrics for one held-out item per user: HR@k, NDCG@k, MRR, from the item's rank."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["KS", "hit_rate", "mrr", "ndcg", "rank_of", "summarise"]


def rank_of(scores: npt.NDArray[np.float64], target: int) -> int:
    """0-based rank of `target` in `scores`: how many items score strictly higher.

    Excluded items must already be set to -inf. Ties go to the target (the convention under
    which the published ml-100k Pop/ItemKNN/EASE figures are reproduced; see the report).
    """
    return int(np.count_nonzero(scores > scores[target]))


def hit_rate(ranks: Sequence[int], k: int) -> float:
    """Share of users whose held-out item is in the top `k`."""
    return float(np.mean([r < k for r in ranks])) if ranks else 0.0


def ndcg(ranks: Sequence[int], k: int) -> float:
    """Mean NDCG@k with one relevant item: 1/log2(rank+2) inside the top k, else 0."""
    return (
        float(np.mean([1.0 / math.log2(r + 2) if r < k else 0.0 for r in ranks])) if ranks else 0.0
    )


def mrr(ranks: Sequence[int], depth: int = 50) -> float:
    """Mean reciprocal rank, truncated at `depth` (a miss below it counts 0) for every model."""
    return float(np.mean([1.0 / (r + 1) if r < depth else 0.0 for r in ranks])) if ranks else 0.0


KS = (1, 5, 10, 20, 50)


def summarise(ranks: Iterable[int], ks: Sequence[int] = KS) -> dict[str, float]:
    """HR@k and NDCG@k for each k, MRR@50 and the user count, as one flat dict."""
    rs = list(ranks)
    out: dict[str, float] = {"users": float(len(rs)), "MRR": mrr(rs, max(ks))}
    for k in ks:
        out[f"HR@{k}"] = hit_rate(rs, k)
        out[f"NDCG@{k}"] = ndcg(rs, k)
    return out
