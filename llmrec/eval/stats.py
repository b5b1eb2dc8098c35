"""Paired bootstrap confidence intervals for a difference of per-user metrics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmrec.eval.trainset import F64

__all__ = ["Interval", "paired_bootstrap"]


@dataclass(frozen=True, slots=True)
class Interval:
    """Mean difference (a - b) and its percentile bootstrap interval."""

    diff: float
    low: float
    high: float
    level: float

    def as_dict(self) -> dict[str, float]:
        return {"diff": self.diff, "low": self.low, "high": self.high, "level": self.level}


def paired_bootstrap(
    a: F64, b: F64, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> Interval:
    """CI of mean(a - b) over users, resampling users with replacement (pairs kept together)."""
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in shape: {a.shape} vs {b.shape}")
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(d) == 0:
        return Interval(0.0, 0.0, 0.0, level)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    step = max(1, 20_000_000 // max(len(d), 1))  # bound the index matrix's memory
    for lo in range(0, resamples, step):
        n = min(step, resamples - lo)
        means[lo : lo + n] = d[rng.integers(0, len(d), size=(n, len(d)))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(float(d.mean()), float(low), float(high), level)
