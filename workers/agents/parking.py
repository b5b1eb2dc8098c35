"""The parking lot: events whose item is not indexed yet wait here, bounded, per item.

When the item's vector reaches the local replica the events are released (and replayed through
the `events-by-user` topic, so the agent that owns the user applies them); an event that waits
longer than the timeout, or does not fit, goes to the dead-letter topic. Parked events live in
memory: their offsets are already committed, so a crash loses them (at-most-once for parked
events only; documented).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["ParkedEvent", "ParkingLot"]


@dataclass(frozen=True, slots=True)
class ParkedEvent:
    user_id: str
    raw: bytes
    key: bytes | None
    topic: str
    partition: int
    offset: int
    parked_at: float


class ParkingLot:
    """Bounded per item and in total; oldest-first expiry."""

    def __init__(self, max_per_item: int, max_total: int, timeout_s: float) -> None:
        self.max_per_item = max_per_item
        self.max_total = max_total
        self.timeout_s = timeout_s
        self._by_item: OrderedDict[str, list[ParkedEvent]] = OrderedDict()
        self._total = 0

    def __len__(self) -> int:
        return self._total

    def park(self, item_id: str, event: ParkedEvent) -> str | None:
        """Park `event`; returns None, or the reason it could not be parked."""
        if self._total >= self.max_total:
            return f"unknown item {item_id!r} and the parking lot is full ({self.max_total})"
        waiting = self._by_item.setdefault(item_id, [])
        if len(waiting) >= self.max_per_item:
            return f"unknown item {item_id!r} and {self.max_per_item} events already wait for it"
        waiting.append(event)
        self._total += 1
        return None

    def release(self, item_id: str) -> list[ParkedEvent]:
        """The events waiting for `item_id`, in arrival order (removed from the lot)."""
        waiting = self._by_item.pop(item_id, [])
        self._total -= len(waiting)
        return waiting

    def expired(self, now: float | None = None) -> list[tuple[str, ParkedEvent]]:
        """Remove and return the events parked longer than the timeout."""
        cutoff = (time.time() if now is None else now) - self.timeout_s
        out: list[tuple[str, ParkedEvent]] = []
        for item_id in list(self._by_item):
            waiting = self._by_item[item_id]
            old = [e for e in waiting if e.parked_at <= cutoff]
            if not old:
                continue
            out.extend((item_id, e) for e in old)
            rest = [e for e in waiting if e.parked_at > cutoff]
            if rest:
                self._by_item[item_id] = rest
            else:
                del self._by_item[item_id]
            self._total -= len(old)
        return out
