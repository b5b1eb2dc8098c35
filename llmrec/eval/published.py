"""Scoring the lists a running pipeline published, prequentially (`llmrec eval --through-kafka`).

A checked event is a hit when its item was in the last list published for its user *before*
it: the latest list whose covered events all precede it in the stream. A list that covers the
checked event itself (the worker folded it into the same micro-batch as earlier ones) does not
count, since it was computed after seeing it. A checked event with no list before it (its
user's earlier events all arrived in the same batch) is counted apart, as `no_list`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from llmrec.events import Event

__all__ = ["PublishedList", "PublishedScore", "score_published"]


@dataclass(frozen=True, slots=True)
class PublishedList:
    """What the scorer needs of one published recommendation."""

    user_id: str
    covered_event_ids: Sequence[str]
    item_ids: Sequence[str]


@dataclass(frozen=True, slots=True)
class PublishedScore:
    checked: int
    no_list: int
    hits: int
    hit_at: Mapping[int, bool]
    """Stream position -> hit, for every checked event that had a list before it."""

    @property
    def hr(self) -> float:
        """Hit rate over the checked events that had a list before them."""
        scored = self.checked - self.no_list
        return self.hits / scored if scored else 0.0


def score_published(
    stream: Sequence[Event], checks: Iterable[int], lists: Iterable[PublishedList]
) -> PublishedScore:
    """Score the events at positions `checks` of `stream` against the published `lists`."""
    position = {ev.event_id: n for n, ev in enumerate(stream)}
    by_user: dict[str, list[tuple[int, frozenset[str]]]] = {}
    for rec in lists:
        covered = [position[i] for i in rec.covered_event_ids if i in position]
        if covered:
            by_user.setdefault(rec.user_id, []).append((max(covered), frozenset(rec.item_ids)))
    for recs in by_user.values():
        recs.sort(key=lambda r: r[0])
    checked = no_list = hits = 0
    hit_at: dict[int, bool] = {}
    for n in checks:
        ev = stream[n]
        checked += 1
        recs = by_user.get(ev.user_id, [])
        # The last list whose newest covered event precedes n (a redelivered duplicate list
        # covers the same events, so it changes nothing).
        j = bisect.bisect_left(recs, n, key=lambda r: r[0]) - 1
        if j < 0:
            no_list += 1
            continue
        hit = ev.item_id in recs[j][1]
        hits += hit
        hit_at[n] = hit
    return PublishedScore(checked, no_list, hits, hit_at)
