"""Item co-visitation counts, maintained incrementally from the event stream in bounded memory.

When a user engages with item b, every item a in their recent list gains weight for the pair
(a, b) in both directions, discounted by how far back a sits (`gap_decay ** distance`). Each
item keeps at most `max_neighbours` neighbours: when its list grows past twice that, the
weakest are pruned, so memory is O(items x max_neighbours). Scores are cosine-normalised by
the items' total engagement so that popular items do not dominate every neighbour list
(this is ItemKNN's similarity, computed from the stream).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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

    def __len__(self) -> int:
        return len(self._pairs)

    def add(self, item_id: str, recent: Sequence[str], weight: float = 1.0) -> None:
        """Count `item_id` as co-visited with `recent` (most recent last, excluding itself)."""
        if weight <= 0:
            return
        self._mass[item_id] += weight
        window = [r for r in recent if r != item_id][-self.config.window :]
        for dist, other in enumerate(reversed(window)):
            w = weight * self.config.gap_decay**dist
            self._bump(item_id, other, w)
            self._bump(other, item_id, w)

    def _bump(self, a: str, b: str, w: float) -> None:
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
