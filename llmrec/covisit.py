"""Item co-visitation counts, maintained incrementally from the event stream in bounded memory.

When a user engages with item b, every item a in their recent list gains weight for the pair
(a, b) in both directions, discounted by how far back a sits (`gap_decay ** distance`). Each
item keeps at most `max_neighbours` neighbours: when its list grows past twice that, the
weakest are pruned, so memory is O(items x max_neighbours). Scores are cosine-normalised by
the items' total engagement so that popular items do not dominate every neighbour list
(this is ItemKNN's similarity, computed from the stream).

Each item's neighbour list is also kept as arrays (neighbour keys, raw counts), rebuilt lazily
after the list changes, and each item's mass factor is kept in an array updated when its mass
changes, so `top` scores a user's recent items in a few vectorised passes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["CoVisitConfig", "CoVisitation"]


@dataclass(frozen=True, slots=True)
class CoVisitConfig:
    """Bounds and weighting of the co-visitation graph."""

    max_neighbours: int = 100
    window: int = 20
    gap_decay: float = 0.97
    normalise_alpha: float = 0.5


class CoVisitation:
    """A bounded, incrementally maintained item-item co-visitation graph."""

    def __init__(self, config: CoVisitConfig | None = None) -> None:
        self.config = config or CoVisitConfig()
        self._pairs: dict[str, dict[str, float]] = defaultdict(dict)
        self._mass: dict[str, float] = defaultdict(float)
        self._key: dict[str, int] = {}
        self._names: list[str] = []
        # right-hand normalisation factor max(mass, 1e-9) ** (1 - alpha) per interned key
        self._right: npt.NDArray[np.float64] = np.ones(1024, dtype=np.float64)
        self._arrays: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {}

    def __len__(self) -> int:
        return len(self._pairs)

    def add(self, item_id: str, recent: Sequence[str], weight: float = 1.0) -> None:
        """Count `item_id` as co-visited with `recent` (most recent last, excluding itself)."""
        if weight <= 0:
            return
        self._mass[item_id] += weight
        alpha = self.config.normalise_alpha
        key = self._intern(item_id)  # first: interning may grow `_right`
        self._right[key] = max(self._mass[item_id], 1e-9) ** (1 - alpha)
        window = [r for r in recent if r != item_id][-self.config.window :]
        for dist, other in enumerate(reversed(window)):
            self._intern(other)
            w = weight * self.config.gap_decay**dist
            self._bump(item_id, other, w)
            self._bump(other, item_id, w)

    def _intern(self, item_id: str) -> int:
        key = self._key.get(item_id)
        if key is None:
            key = self._key[item_id] = len(self._names)
            self._names.append(item_id)
            if key >= self._right.shape[0]:
                self._right = np.concatenate([self._right, np.ones_like(self._right)])
            alpha = self.config.normalise_alpha
            self._right[key] = max(self._mass.get(item_id, 1.0), 1e-9) ** (1 - alpha)
        return key

    def _bump(self, a: str, b: str, w: float) -> None:
        self._arrays.pop(a, None)
        nbrs = self._pairs[a]
        nbrs[b] = nbrs.get(b, 0.0) + w
        if len(nbrs) > 2 * self.config.max_neighbours:
            keep = sorted(nbrs.items(), key=lambda kv: kv[1], reverse=True)
            self._pairs[a] = dict(keep[: self.config.max_neighbours])

    def count(self, a: str, b: str) -> float:
        """The raw co-visitation weight of (a, b)."""
        return self._pairs.get(a, {}).get(b, 0.0)

    def _normalised(self, item_id: str) -> list[tuple[str, float]]:
        nbrs = self._pairs.get(item_id)
        if not nbrs:
            return []
        alpha = self.config.normalise_alpha
        left = max(self._mass.get(item_id, 1.0), 1e-9) ** alpha
        mass = self._mass
        return [
            (b, c / (left * max(mass.get(b, 1.0), 1e-9) ** (1 - alpha))) for b, c in nbrs.items()
        ]

    def _neighbour_arrays(
        self, item_id: str
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Neighbour keys and raw counts of `item_id`, in list order (cached until it changes)."""
        cached = self._arrays.get(item_id)
        if cached is None:
            nbrs = self._pairs.get(item_id, {})
            cached = (
                np.fromiter(map(self._key.__getitem__, nbrs), dtype=np.int64, count=len(nbrs)),
                np.fromiter(nbrs.values(), dtype=np.float64, count=len(nbrs)),
            )
            self._arrays[item_id] = cached
        return cached

    def top(self, recent: Sequence[tuple[str, float]], k: int) -> list[tuple[str, float, str]]:
        """The `k` best of `score(recent)` as (item, score, main source), best first.

        Same numbers and order as sorting `score`'s items by descending score (ties keep first
        appearance), computed with arrays: sums accumulate in the same order, so bit for bit.
        """
        alpha = self.config.normalise_alpha
        nbr_keys, counts, used, lefts, weights, sizes = [], [], [], [], [], []
        for pos, (src, w) in enumerate(recent):
            if w <= 0:
                continue
            nbr, cnt = self._neighbour_arrays(src)
            if nbr.size:
                nbr_keys.append(nbr)
                counts.append(cnt)
                used.append(pos)
                lefts.append(max(self._mass.get(src, 1.0), 1e-9) ** alpha)
                weights.append(w)
                sizes.append(nbr.size)
        if not nbr_keys or k <= 0:
            return []
        key = np.concatenate(nbr_keys)
        # elementwise w * (c / (left * right)): the same float operations as `score`
        contrib = np.repeat(weights, sizes) * (
            np.concatenate(counts) / (np.repeat(lefts, sizes) * self._right[key])
        )
        n, size = len(self._names), key.size
        total = np.bincount(key, weights=contrib, minlength=n)  # adds in appearance order
        first = np.full(n, size)
        np.minimum.at(first, key, np.arange(size))
        largest = np.zeros(n)
        np.maximum.at(largest, key, contrib)
        # the earliest source giving each item its largest contribution
        at_max = np.flatnonzero(contrib == largest[key])
        first_max = np.full(n, size)
        np.minimum.at(first_max, key[at_max], at_max)
        present = np.flatnonzero(first < size)
        appearance = present[np.argsort(first[present])]
        chosen = appearance[np.argsort(-total[appearance], kind="stable")[:k]]
        src_pos = np.repeat(used, sizes)[first_max[chosen]]
        names = self._names
        return [
            (names[c], score, recent[pos][0])
            for c, score, pos in zip(
                chosen.tolist(), total[chosen].tolist(), src_pos.tolist(), strict=True
            )
        ]

    def neighbours(self, item_id: str, k: int | None = None) -> list[tuple[str, float]]:
        """Neighbours of `item_id` by normalised similarity, best first."""
        scored = sorted(self._normalised(item_id), key=lambda kv: kv[1], reverse=True)
        return scored[:k] if k is not None else scored

    def score(self, recent: Iterable[tuple[str, float]]) -> dict[str, tuple[float, str]]:
        """Neighbour similarities summed over weighted `recent`: item -> (score, main source)."""
        total: dict[str, float] = {}
        best: dict[str, tuple[float, str]] = {}
        for src, w in recent:
            if w <= 0:
                continue
            for b, s in self._normalised(src):
                contrib = w * s
                total[b] = total.get(b, 0.0) + contrib
                if contrib > best.get(b, (0.0, ""))[0]:
                    best[b] = (contrib, src)
        return {b: (t, best[b][1]) for b, t in total.items()}

    def memory_items(self) -> int:
        """Number of stored (item, neighbour) pairs: the memory bound's unit."""
        return sum(len(v) for v in self._pairs.values())
