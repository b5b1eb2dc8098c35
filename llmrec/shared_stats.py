"""The shared statistics as a stream: per-event updates keyed by item, per-item records.

A worker applies a user's event to the user's state and emits a `StatsUpdate`: the engaged
item, its weight, the user's recent items before it, the time, the sentiment and the review
vector. The updates are keyed by the engaged item, so one owner folds all of an item's updates
into its `ItemStatsRecord` (`ItemStatsRecord.apply`), and every worker replicates the records
(`Engine.apply_record`).

A record holds what the item's own events contributed: its co-visitation mass, its decayed
popularity, its engagement statistics and its *out-list*, the co-visitation weight given to
each item that came before it in a user's recent list. A pair's symmetric co-visitation count,
the one the Engine ranks with, is the sum of both items' out-lists: a record replacing an older
one adds the difference of the out-lists to the Engine's graph, both directions. One event
therefore changes one record, not one per item of the window (twenty times fewer records).
An out-list is bounded like the graph's lists (`max_neighbours`, pruned at twice that to the
strongest); a pruned entry stops counting there, what it added to the graph stays.

Both travel as compact bytes (`to_bytes` / `from_bytes`, `ValueError` on damaged input).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from llmrec.covisit import CoVisitConfig
from llmrec.popularity import PopularityConfig
from llmrec.types import Vector

__all__ = ["ItemStatsRecord", "StatsUpdate", "pack_updates", "unpack_updates"]

_RESCALE_AT = 600.0  # as in DecayedPopularity: move the reference before exp() could overflow

_UPDATE = struct.Struct(
    "<4sBddddHH"
)  # magic, flags, ts, engage, sentiment, event_at, window n, dim
_RECORD = struct.Struct("<4sddddddqqHI")  # magic, mass, pop value, pop ref, count, first ts,
# event_at, sentiment n, review n, dim, out-list n; then sentiment sum (d), ids, counts, review
_U_MAGIC, _R_MAGIC, _B_MAGIC = b"LSU1", b"LIR1", b"LSB1"
_BUNDLE = struct.Struct("<4sI")  # magic, count; then each update as u32 length + bytes
_LEN = struct.Struct("<I")
_FIRST, _HAS_SENTIMENT, _HAS_REVIEW = 1, 2, 4


def _pack_ids(ids: list[str]) -> bytes:
    encoded = [i.encode("utf-8") for i in ids]
    lengths = np.fromiter(map(len, encoded), dtype="<u2", count=len(encoded))
    return lengths.tobytes() + b"".join(encoded)


def _unpack_ids(raw: bytes, at: int, n: int) -> tuple[list[str], int]:
    lengths = np.frombuffer(raw, dtype="<u2", count=n, offset=at)
    at += 2 * n
    ends = np.cumsum(lengths, dtype=np.int64).tolist()
    end = at + (ends[-1] if ends else 0)
    if end > len(raw):
        raise ValueError("ids cut short")
    blob = raw[at:end]
    starts = [0, *ends][:n]
    if blob.isascii():  # the usual case: one decode, byte offsets are character offsets
        text = blob.decode("ascii")
        return [text[a:b] for a, b in zip(starts, ends, strict=True)], end
    return [blob[a:b].decode("utf-8") for a, b in zip(starts, ends, strict=True)], end


@dataclass(frozen=True, slots=True)
class StatsUpdate:
    """What one applied event changes in the shared statistics (all of it the item's)."""

    item_id: str
    ts: float
    engage: float
    """Weight of the event in co-visitation and popularity (0: it adds none)."""
    first: bool
    """Whether it counts as an engagement (a second review of a seen item does not)."""
    window: tuple[str, ...] = ()
    """The user's recent engaged items before this one, most recent last."""
    sentiment: float | None = None
    review: Vector | None = None
    """The event's encoded text, for the item's crowd-text mean."""
    event_at: float = 0.0
    """Wall-clock time the event was produced (its Kafka timestamp; 0: unknown), so that a
    replica can measure how long an event takes to reach its statistics."""

    def to_bytes(self) -> bytes:
        flags = (
            (_FIRST if self.first else 0)
            | (_HAS_SENTIMENT if self.sentiment is not None else 0)
            | (_HAS_REVIEW if self.review is not None else 0)
        )
        review = self.review.astype("<f4").tobytes() if self.review is not None else b""
        head = _UPDATE.pack(
            _U_MAGIC, flags, self.ts, self.engage, self.sentiment or 0.0, self.event_at,
            len(self.window),
            self.review.shape[0] if self.review is not None else 0,
        )  # fmt: skip
        return head + _pack_ids([self.item_id, *self.window]) + review

    @classmethod
    def from_bytes(cls, raw: bytes) -> StatsUpdate:
        try:
            magic, flags, ts, engage, sentiment, event_at, n, dim = _UPDATE.unpack_from(raw)
            if magic != _U_MAGIC:
                raise ValueError(f"not a stats update (starts {bytes(raw[:4])!r})")
            ids, at = _unpack_ids(raw, _UPDATE.size, n + 1)
            review = None
            if flags & _HAS_REVIEW:
                review = np.frombuffer(raw, dtype="<f4", count=dim, offset=at).astype(np.float32)
                at += 4 * dim
            if at != len(raw):
                raise ValueError(f"stats update of {len(raw)} bytes, expected {at}")
        except (struct.error, UnicodeDecodeError) as exc:
            raise ValueError(f"unreadable stats update: {exc}") from None
        return cls(
            item_id=ids[0], ts=ts, engage=engage, first=bool(flags & _FIRST),
            window=tuple(ids[1:]),
            sentiment=sentiment if flags & _HAS_SENTIMENT else None, review=review,
            event_at=event_at,
        )  # fmt: skip


@dataclass(slots=True)
class ItemStatsRecord:
    """One item's share of the statistics: what its own events added (see module docstring)."""

    mass: float = 0.0
    pop_value: float = 0.0
    pop_ref: float | None = None
    """`pop_value` is the decayed popularity at time `pop_ref` (None: never engaged)."""
    count: float = 0.0
    first_ts: float = math.nan
    sent_sum: float = 0.0
    sent_n: int = 0
    review_sum: npt.NDArray[np.float32] | None = None
    review_n: int = 0
    out: dict[str, float] = field(default_factory=dict)
    """Co-visitation weight given to each item seen before this one (insertion order)."""
    event_at: float = 0.0
    """The newest `StatsUpdate.event_at` folded in."""

    def apply(
        self, u: StatsUpdate, covisit: CoVisitConfig, popularity: PopularityConfig
    ) -> list[tuple[str, float]]:
        """Fold `u` (an update of this item) in; returns the co-visitation increments it made,
        in the order `CoVisitation.add` makes them (the Engine adds them to both directions)."""
        made: list[tuple[str, float]] = []
        self.event_at = max(self.event_at, u.event_at)
        if u.first and u.engage > 0:
            self.mass += u.engage
            window = [r for r in u.window if r != u.item_id][-covisit.window :]
            for dist, other in enumerate(reversed(window)):
                w = u.engage * covisit.gap_decay**dist
                self.out[other] = self.out.get(other, 0.0) + w
                made.append((other, w))
            if len(self.out) > 2 * covisit.max_neighbours:
                keep = sorted(self.out.items(), key=lambda kv: kv[1], reverse=True)
                self.out = dict(keep[: covisit.max_neighbours])
            self._add_popularity(u.ts, u.engage, popularity)
        if u.first:
            self.count += 1.0
            if math.isnan(self.first_ts) or u.ts < self.first_ts:
                self.first_ts = u.ts
            if u.sentiment is not None and math.isfinite(u.sentiment):
                self.sent_sum += u.sentiment
                self.sent_n += 1
        if u.review is not None and np.isfinite(u.review).all():
            if self.review_sum is None:
                self.review_sum = np.zeros(u.review.shape[0], dtype=np.float32)
            self.review_sum += u.review
            self.review_n += 1
        return made

    def _add_popularity(self, ts: float, weight: float, config: PopularityConfig) -> None:
        rate = math.log(2) / config.half_life_s
        if self.pop_ref is None:
            self.pop_ref = ts
        exponent = (ts - self.pop_ref) * rate
        if exponent > _RESCALE_AT:
            self.pop_value *= math.exp(-exponent)
            self.pop_ref, exponent = ts, 0.0
        self.pop_value += weight * math.exp(exponent)

    def to_bytes(self) -> bytes:
        dim = self.review_sum.shape[0] if self.review_sum is not None else 0
        head = _RECORD.pack(
            _R_MAGIC, self.mass, self.pop_value,
            self.pop_ref if self.pop_ref is not None else math.nan, self.count, self.first_ts,
            self.event_at, self.sent_n, self.review_n, dim, len(self.out),
        )  # fmt: skip
        counts = np.fromiter(self.out.values(), dtype="<f8", count=len(self.out)).tobytes()
        review = self.review_sum.astype("<f4").tobytes() if self.review_sum is not None else b""
        return b"".join(
            (head, struct.pack("<d", self.sent_sum), _pack_ids(list(self.out)), counts, review)
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> ItemStatsRecord:
        try:
            head = _RECORD.unpack_from(raw)
            magic, mass, value, ref, count, first, event_at, sent_n, review_n, dim, n = head
            if magic != _R_MAGIC:
                raise ValueError(f"not an item-stats record (starts {bytes(raw[:4])!r})")
            (sent_sum,) = struct.unpack_from("<d", raw, _RECORD.size)
            ids, at = _unpack_ids(raw, _RECORD.size + 8, n)
            counts = np.frombuffer(raw, dtype="<f8", count=n, offset=at)
            at += 8 * n
            review = None
            if dim:
                review = np.frombuffer(raw, dtype="<f4", count=dim, offset=at).astype(np.float32)
                at += 4 * dim
            if at != len(raw):
                raise ValueError(f"item-stats record of {len(raw)} bytes, expected {at}")
        except (struct.error, UnicodeDecodeError) as exc:
            raise ValueError(f"unreadable item-stats record: {exc}") from None
        finite = all(math.isfinite(v) for v in (mass, value, count, sent_sum))
        if not (finite and np.isfinite(counts).all()) or (
            review is not None and not np.isfinite(review).all()
        ):
            raise ValueError("item-stats record with a number that is not finite")
        return cls(
            mass=mass, pop_value=value, pop_ref=None if math.isnan(ref) else ref, count=count,
            first_ts=first, sent_sum=sent_sum, sent_n=sent_n, review_sum=review,
            review_n=review_n, out=dict(zip(ids, counts.tolist(), strict=True)), event_at=event_at,
        )  # fmt: skip


def pack_updates(updates: list[StatsUpdate]) -> bytes:
    """Several updates as one message (`LSB1`): a worker sends one per item partition per
    micro-batch instead of one message per event."""
    chunks = [_BUNDLE.pack(_B_MAGIC, len(updates))]
    for u in updates:
        raw = u.to_bytes()
        chunks += [_LEN.pack(len(raw)), raw]
    return b"".join(chunks)


def unpack_updates(raw: bytes) -> list[StatsUpdate]:
    """The updates of a `pack_updates` message, or the one update of a bare `StatsUpdate`;
    ValueError when either is damaged."""
    if raw[:4] == _U_MAGIC:
        return [StatsUpdate.from_bytes(raw)]
    try:
        magic, n = _BUNDLE.unpack_from(raw)
        if magic != _B_MAGIC:
            raise ValueError(f"not a stats update (starts {bytes(raw[:4])!r})")
        out, at = [], _BUNDLE.size
        for _ in range(n):
            (size,) = _LEN.unpack_from(raw, at)
            at += _LEN.size
            if at + size > len(raw):
                raise ValueError("stats bundle cut short")
            out.append(StatsUpdate.from_bytes(raw[at : at + size]))
            at += size
    except struct.error as exc:
        raise ValueError(f"unreadable stats bundle: {exc}") from None
    if at != len(raw):
        raise ValueError(f"stats bundle of {len(raw)} bytes, expected {at}")
    return out
