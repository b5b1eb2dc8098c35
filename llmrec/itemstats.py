"""Per-item statistics from the stream: engagement count, first-seen time, crowd text, sentiment.

The *crowd-text vector* of an item is the running mean of the encoded review texts written about
it. A user's own review text is compared with these (review against reviews: the same
distribution) rather than with the item's description, where review language does not belong.
Everything is array-backed and indexed by a dense integer per item id, so a batch of candidates
reads its rows in one gather. `to_part` / `from_part` carry the statistics across a restart
(`llmrec.stats_snapshot`; crowd-text sums only for the items that have reviews).
"""

from __future__ import annotations

import math
from itertools import islice, repeat

import numpy as np
import numpy.typing as npt

from llmrec.stats_snapshot import StatsPart, check
from llmrec.types import Vector, Vectors

__all__ = ["ItemStats"]

_F64 = npt.NDArray[np.float64]


class ItemStats:
    """Incremental per-item statistics (one writer; reads are vectorised)."""

    def __init__(self, dim: int, capacity: int = 1024) -> None:
        self.dim = dim
        self._row: dict[str, int] = {}
        self._text_sum: npt.NDArray[np.float32] = np.zeros((capacity, dim), dtype=np.float32)
        self._text_n = np.zeros(capacity, dtype=np.int64)
        self._count = np.zeros(capacity, dtype=np.float64)
        self._first_ts = np.full(capacity, np.nan)
        self._sent_sum = np.zeros(capacity, dtype=np.float64)
        self._sent_n = np.zeros(capacity, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._row)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._row

    def _ensure(self, item_id: str) -> int:
        r = self._row.get(item_id)
        if r is not None:
            return r
        r = len(self._row)
        if r >= self._count.shape[0]:
            grow = self._count.shape[0]
            self._text_sum = np.concatenate([self._text_sum, np.zeros_like(self._text_sum)])
            self._text_n = np.concatenate([self._text_n, np.zeros(grow, dtype=np.int64)])
            self._count = np.concatenate([self._count, np.zeros(grow)])
            self._first_ts = np.concatenate([self._first_ts, np.full(grow, np.nan)])
            self._sent_sum = np.concatenate([self._sent_sum, np.zeros(grow)])
            self._sent_n = np.concatenate([self._sent_n, np.zeros(grow, dtype=np.int64)])
        self._row[item_id] = r
        return r

    # -- updates ---------------------------------------------------------------------------

    def note(self, item_id: str, ts: float) -> None:
        """The item exists from `ts` on (catalogue upsert or first event), if not known earlier."""
        r = self._ensure(item_id)
        if math.isnan(self._first_ts[r]) or ts < self._first_ts[r]:
            self._first_ts[r] = ts

    def engage(self, item_id: str, ts: float, sentiment: float | None = None) -> None:
        """Count one engagement; a rating's or review's sentiment joins the item's mean."""
        self.note(item_id, ts)
        r = self._row[item_id]
        self._count[r] += 1.0
        if sentiment is not None and math.isfinite(sentiment):
            self._sent_sum[r] += sentiment
            self._sent_n[r] += 1

    def add_review(self, item_id: str, text_vector: Vector) -> None:
        """Fold one encoded review text about the item into its crowd-text running mean."""
        if not np.isfinite(text_vector).all():
            return
        r = self._ensure(item_id)
        self._text_sum[r] += text_vector
        self._text_n[r] += 1

    def set(
        self, item_id: str, *, count: float, first_ts: float, sent_sum: float, sent_n: int,
        review_sum: Vector | None, review_n: int,
    ) -> None:  # fmt: skip
        """Replace the item's stream statistics by a replicated `ItemStatsRecord`'s (its first-seen
        time stays the earlier of the catalogue's and the record's)."""
        if not math.isnan(first_ts):
            self.note(item_id, first_ts)
        r = self._ensure(item_id)
        self._count[r], self._sent_sum[r], self._sent_n[r] = count, sent_sum, sent_n
        self._text_n[r] = review_n
        self._text_sum[r] = review_sum if review_sum is not None else 0.0

    # -- snapshot --------------------------------------------------------------------------

    _COLUMNS = (
        ("count", np.float64), ("first_ts", np.float64), ("sent_sum", np.float64),
        ("sent_n", np.int64), ("text_n", np.int64),
    )  # fmt: skip

    def to_part(self) -> StatsPart:
        """The statistics, for `llmrec.stats_snapshot`: per-item columns, and the crowd-text
        sums of the reviewed items only (a dense copy would cost 4 x dim bytes per item)."""
        n = len(self._row)
        arrays = {name: getattr(self, "_" + name)[:n] for name, _ in self._COLUMNS}
        reviewed = np.flatnonzero(self._text_n[:n] > 0).astype(np.int32)
        arrays |= {"text_rows": reviewed, "text_sum": self._text_sum[reviewed]}
        return StatsPart(list(self._row), arrays, {"dim": float(self.dim)})

    @classmethod
    def from_part(cls, part: StatsPart, dim: int) -> ItemStats:
        """Statistics as `to_part` exported them; SnapshotError when inconsistent or of
        another dimension than `dim` (the index's)."""
        n = len(part.ids)
        check(
            part.scalar("dim") == dim, f"item stats of dimension {part.scalars['dim']}, not {dim}"
        )
        check(len(set(part.ids)) == n, "repeated item-stats ids")
        out = cls(dim, capacity=max(n, 1024))
        out._row = {item_id: r for r, item_id in enumerate(part.ids)}
        for name, dtype in cls._COLUMNS:
            getattr(out, "_" + name)[:n] = part.array(name, dtype, (n,))
        rows = part.array("text_rows", np.int32, (-1,))
        check(bool(np.all((rows >= 0) & (rows < n))), "crowd-text rows out of range")
        out._text_sum[rows] = part.array("text_sum", np.float32, (rows.size, dim))
        return out

    # -- reads -----------------------------------------------------------------------------

    def ids_from(self, row: int) -> list[str]:
        """The ids of the rows from `row` on, in row order (rows are given in arrival order)."""
        return list(islice(self._row, row, None))

    def rows(self, ids: list[str]) -> npt.NDArray[np.int64]:
        """Row of each id, -1 when the stream never mentioned it."""
        return np.fromiter(map(self._row.get, ids, repeat(-1)), dtype=np.int64, count=len(ids))

    def review_counts(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """How many reviews each of `rows` has (0 where the stream never mentioned it)."""
        counts: npt.NDArray[np.int64] = np.where(rows >= 0, self._text_n[np.maximum(rows, 0)], 0)
        return counts

    def crowd_vectors(self, rows: npt.NDArray[np.int64]) -> tuple[Vectors, npt.NDArray[np.int64]]:
        """Unit crowd-text vectors of `rows` (zero rows where no review) and review counts."""
        n = self.review_counts(rows)
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        reviewed = np.flatnonzero(n > 0)  # most candidates have no review: normalise only these
        if len(reviewed):
            sums = self._text_sum[rows[reviewed]]
            norms = np.linalg.norm(sums, axis=1, keepdims=True)
            out[reviewed] = np.divide(sums, norms, out=np.zeros_like(sums), where=norms > 1e-9)
        return out, n

    def crowd_vector(self, item_id: str) -> Vector | None:
        """The running mean of the item's review vectors (not normalised), None if no review."""
        r = self._row.get(item_id)
        if r is None or self._text_n[r] == 0:
            return None
        mean: Vector = self._text_sum[r] / self._text_n[r]
        return mean

    def counts(self, rows: npt.NDArray[np.int64]) -> _F64:
        return np.where(rows >= 0, self._count[np.maximum(rows, 0)], 0.0)

    def first_seen(self, rows: npt.NDArray[np.int64]) -> _F64:
        """First time each item was seen; NaN where unknown."""
        return np.where(rows >= 0, self._first_ts[np.maximum(rows, 0)], np.nan)

    def sentiment(self, rows: npt.NDArray[np.int64]) -> _F64:
        """Mean sentiment of each item's ratings and reviews; NaN where it has none."""
        safe = np.maximum(rows, 0)
        n = np.where(rows >= 0, self._sent_n[safe], 0)
        total = self._sent_sum[safe]
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)
