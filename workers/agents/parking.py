"""Parking: an event whose item is not indexed yet waits on the `events-parked` topic.

Durable by construction: an event is produced to `events-parked` before its own offset is
committed, and the parked agent releases it (to `events-by-user`) or re-queues it before
committing its offset, so a crash at any point delivers it again rather than losing it
(at-least-once; the user state's event-id memory makes a second delivery change nothing).

Each hop waits `retry_s` (checking the index meanwhile, so a release waits at most one poll
once the event reaches the head of its partition); an event whose item is still unknown
`timeout_s` after it was first parked goes to the dead-letter topic. The hop time, the first
park time and the original coordinates travel in Kafka headers, so the value stays the
producer's bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Ticket", "Verdict", "verdict"]

_PARKED_AT = "llmrec-parked-at"
_HOP_AT = "llmrec-hop-at"
_SOURCE = "llmrec-source"

Headers = Sequence[tuple[str, bytes]] | Mapping[str, bytes] | None


@dataclass(frozen=True, slots=True)
class Ticket:
    """Where a parked event came from and when it was first parked."""

    parked_at: float
    topic: str
    partition: int
    offset: int

    def headers(self, hop_at: float) -> list[tuple[str, bytes]]:
        """Kafka headers for one hop of this event (released or re-queued)."""
        return [
            (_PARKED_AT, repr(self.parked_at).encode()),
            (_HOP_AT, repr(hop_at).encode()),
            (_SOURCE, f"{self.partition}:{self.offset}:{self.topic}".encode()),
        ]

    @classmethod
    def from_headers(cls, headers: Headers) -> tuple[Ticket, float] | None:
        """The ticket and hop time carried by `headers`; None when they carry none (or junk)."""
        found = dict(headers.items() if isinstance(headers, Mapping) else headers or ())
        try:
            partition, offset, topic = found[_SOURCE].decode().split(":", 2)
            ticket = cls(float(found[_PARKED_AT]), topic, int(partition), int(offset))
            return ticket, float(found.get(_HOP_AT, found[_PARKED_AT]))
        except (KeyError, ValueError, UnicodeDecodeError):
            return None


class Verdict(StrEnum):
    RELEASE = "released"  # the item is indexed: send the event on to its user
    WAIT = "wait"  # not yet time to look again
    REQUEUE = "requeued"  # still unknown: park it again for another hop
    EXPIRE = "expired"  # unknown for `timeout_s`: dead-letter it


def verdict(
    *, known: bool, now: float, hop_at: float, parked_at: float, retry_s: float, timeout_s: float
) -> tuple[Verdict, float]:
    """What to do with a parked event now, and (for WAIT) how long until its next look."""
    if known:
        return Verdict.RELEASE, 0.0
    if now - parked_at >= timeout_s:
        return Verdict.EXPIRE, 0.0
    due = hop_at + retry_s
    if now < due:
        return Verdict.WAIT, due - now
    return Verdict.REQUEUE, 0.0
