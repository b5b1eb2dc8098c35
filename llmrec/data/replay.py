"""Turn a MovieLens dataset into the llmrec event stream: item upserts plus user events.

The mapping (documented in the README): a rating of 4.5-5 becomes a `purchase`, 3-4 a `rating`
event carrying the value, 2-2.5 a `view` (a weak signal), below 2 a `dislike`. A tag becomes a
short `review` whose text is the tag.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from typing import Any

from llmrec.data.movielens import Dataset, Interaction, TagNote

__all__ = ["dataset_events", "interleave_users", "item_records", "rating_event"]


def item_records(ds: Dataset) -> Iterator[dict[str, Any]]:
    """One `items` record per movie, with its genres as categories."""
    for m in ds.movies.values():
        yield {"item_id": m.item_id, "title": m.title, "categories": list(m.genres), "ts": 0}


def rating_event(r: Interaction, event_id: str) -> dict[str, Any]:
    """Map one rating to one event by value (see the module docstring)."""
    base = {"event_id": event_id, "user_id": r.user_id, "item_id": r.item_id, "ts": r.ts}
    if r.rating >= 4.5:
        return {**base, "type": "purchase", "rating": r.rating}
    if r.rating >= 3:
        return {**base, "type": "rating", "rating": r.rating}
    if r.rating >= 2:
        return {**base, "type": "view"}
    return {**base, "type": "dislike", "rating": max(r.rating, 1.0)}


def _tag_event(t: TagNote, event_id: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "review",
        "user_id": t.user_id,
        "item_id": t.item_id,
        "ts": t.ts,
        "text": t.tag,
    }


def dataset_events(ds: Dataset) -> Iterator[dict[str, Any]]:
    """All user events of `ds`, merged in timestamp order (ties: ratings before tags)."""
    ratings = ((r.ts, 0, i, r) for i, r in enumerate(sorted(ds.ratings, key=lambda r: r.ts)))
    tags = ((t.ts, 1, i, t) for i, t in enumerate(sorted(ds.tags, key=lambda t: t.ts)))
    for _, kind, i, rec in heapq.merge(ratings, tags):
        if kind == 0:
            assert isinstance(rec, Interaction)
            yield rating_event(rec, f"{ds.name}-r{i}")
        else:
            assert isinstance(rec, TagNote)
            yield _tag_event(rec, f"{ds.name}-t{i}")


def interleave_users(
    events: Sequence[dict[str, Any]], max_per_user: int | None = None
) -> list[dict[str, Any]]:
    """`events` as many concurrent users send them: round-robin over the users (each user's
    events keep their order), so consecutive events are different users'. With
    `max_per_user`, each user's first that many events only: past the typical user's count,
    round-robin would leave a few heavy users sending most of the stream. Timestamps are
    re-stamped evenly over the original span, in the new order, so event time only moves
    forward.
    """
    queues: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        queues.setdefault(e["user_id"], []).append(e)
    if max_per_user is not None:
        queues = {u: q[:max_per_user] for u, q in queues.items()}
    total = sum(len(q) for q in queues.values())
    out: list[dict[str, Any]] = []
    depth = 0
    while len(out) < total:
        out += [q[depth] for q in queues.values() if depth < len(q)]
        depth += 1
    if not out:
        return out
    first = min(float(e["ts"]) for e in events)
    step = (max(float(e["ts"]) for e in events) - first) / len(out)
    return [{**e, "ts": first + n * step} for n, e in enumerate(out)]
