"""A time-decayed popularity prior, updated per event, queried as "popular now".

Each item keeps a score that halves every `half_life_s` of event time. Scores are stored
relative to a reference time (log-space trick) so an update is O(1) and a query is one vectorised
pass over the catalogue; the reference moves forward before the numbers could overflow.
`to_part` / `from_part` carry the scores across a restart (`llmrec.stats_snapshot`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from llmrec.stats_snapshot import StatsPart, check

__all__ = ["DecayedPopularity", "PopularityConfig"]

_RESCALE_AT = 600.0  # exponent (in nats) past which the reference time is moved


@dataclass(frozen=True, slots=True)
class PopularityConfig:
    """Half-life of popularity, in seconds of event time."""

    half_life_s: float = 14 * 86_400.0


class DecayedPopularity:
    """Per-item exponentially decayed engagement."""

    def __init__(self, config: PopularityConfig | None = None) -> None:
        self.config = config or PopularityConfig()
        self._rate = math.log(2) / self.config.half_life_s
        self._ref: float | None = None
        self._pos: dict[str, int] = {}
        self._ids: list[str] = []
        self._val: npt.NDArray[np.float64] = np.zeros(1024, dtype=np.float64)
        self._total = 0.0
        self.version = 0
        """Counts changes: the ranking of items only changes when it does (see `top`)."""

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, item_id: str, ts: float, weight: float = 1.0) -> None:
        """Add `weight` of engagement with `item_id` at time `ts`."""
        if weight <= 0:
            return
        exponent = self._exponent(ts)
        i = self._slot(item_id)
        inc = weight * math.exp(exponent)
        self._val[i] += inc
        self._total += inc
        self.version += 1

    def set(self, item_id: str, value: float, ref: float) -> None:
        """Replace `item_id`'s score by `value`, its decayed engagement as of time `ref` (a
        replicated `ItemStatsRecord`); the total follows."""
        exponent = self._exponent(ref)
        i = self._slot(item_id)
        new = value * math.exp(exponent)
        self._total = max(0.0, self._total + new - float(self._val[i]))
        self._val[i] = new
        self.version += 1

    def _exponent(self, ts: float) -> float:
        """Log-scale of time `ts` against the reference, which first moves forward (scaling
        every score down) when the value would pass `_RESCALE_AT`."""
        if self._ref is None:
            self._ref = ts
        exponent = (ts - self._ref) * self._rate
        if exponent > _RESCALE_AT:
            self._val[: len(self._ids)] *= math.exp(-exponent)
            self._total *= math.exp(-exponent)
            self._ref, exponent = ts, 0.0
        return exponent

    def _slot(self, item_id: str) -> int:
        i = self._pos.get(item_id)
        if i is None:
            i = len(self._ids)
            self._pos[item_id] = i
            self._ids.append(item_id)
            if i >= self._val.shape[0]:
                self._val = np.concatenate([self._val, np.zeros_like(self._val)])
        return i

    def scores(self, now: float) -> tuple[list[str], npt.NDArray[np.float64]]:
        """All items and their decayed scores at `now`, as shares of the total (sum to <= 1)."""
        n = len(self._ids)
        if n == 0 or self._total <= 0:
            return [], np.zeros(0)
        return self._ids, self._val[:n] / self._total

    def top(self, k: int, now: float) -> tuple[list[str], npt.NDArray[np.float64]]:
        """The `k` most popular items at `now`, best first: their ids and an array of their
        shares of engagement."""
        ids, vals = self.scores(now)
        if not ids:
            return [], np.zeros(0)
        k = min(k, len(ids))
        idx = np.argpartition(-vals, k - 1)[:k]
        idx = idx[np.argsort(-vals[idx], kind="stable")]
        return [ids[i] for i in idx.tolist()], vals[idx]

    def to_part(self) -> StatsPart:
        """The scores, for `llmrec.stats_snapshot` (relative values, reference time, total)."""
        values = self._val[: len(self._ids)]
        return StatsPart(
            list(self._ids), {"values": values}, {"ref": self._ref, "total": self._total}
        )

    @classmethod
    def from_part(
        cls, part: StatsPart, config: PopularityConfig | None = None
    ) -> DecayedPopularity:
        """Popularity as `to_part` exported it; SnapshotError when the part is inconsistent."""
        n = len(part.ids)
        values = part.array("values", np.float64, (n,))
        total = part.scalar("total")
        ref = part.scalar("ref") if part.scalars.get("ref") is not None else None
        check(bool(np.isfinite(values).all() and (values >= 0).all()), "popularity values")
        check(total >= 0, "negative popularity total")
        check(len(set(part.ids)) == n, "repeated popularity ids")
        out = cls(config)
        out._ref, out._total = ref, total
        out._ids = list(part.ids)
        out._pos = {item_id: i for i, item_id in enumerate(out._ids)}
        out._val = np.zeros(max(n, out._val.shape[0]), dtype=np.float64)
        out._val[:n] = values
        return out

    def share(self, item_id: str) -> float:
        """`item_id`'s share of current decayed engagement (0 when never seen)."""
        i = self._pos.get(item_id)
        return float(self._val[i] / self._total) if i is not None and self._total > 0 else 0.0
