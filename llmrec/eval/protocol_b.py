"""Protocol B, streaming (prequential): before each event, would its item have been published?

Every event of the dataset is replayed in time order through `Engine.observe`. For a sample of
events (each user's first event on an item, for a random `user_fraction` of users, at most
`max_checks` of them, the first `warmup_fraction` of the stream skipped so that statistics
exist), the engine first recommends
`k` items for that user at the event's time; a hit means the item was in that list. The same
checks are run for "popular now" (the engine's cold-start list, minus the user's seen items) so
the figure has a yardstick. Sampling keeps the run to minutes (a recommend call costs ~10 ms).

No look-ahead: the engine starts empty and learns only from events already replayed, so
"popular now" is the popularity at the event's own time; the event is folded in after its
check. Events on items missing from the catalogue are skipped (the stream would park them).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Container, Sequence
from dataclasses import dataclass

from llmrec.data.contract import ContractDataset
from llmrec.engine import Engine, EngineConfig
from llmrec.events import Event
from llmrec.index import ItemIndex
from llmrec.types import TextEncoder

__all__ = ["PrequentialResult", "check_positions", "event_stream", "prequential"]


@dataclass(frozen=True, slots=True)
class PrequentialResult:
    """Hit rates of the hybrid and of "popular now" over the checked events."""

    events: int
    checked: int
    k: int
    hybrid_hr: float
    popular_hr: float


def event_stream(ds: ContractDataset, known: Container[str]) -> list[Event]:
    """The events on catalogued items in time order (stable: file order breaks ties); this is
    the order Protocol B replays and the order `--through-kafka` sends."""
    return sorted((e for e in ds.events if e.item_id in known), key=lambda e: e.ts)


def check_positions(
    stream: Sequence[Event], *, users: Collection[str] | None = None,
    user_fraction: float = 0.2, max_checks: int = 3000, warmup_fraction: float = 0.2,
    seed: int = 0,
) -> list[int]:  # fmt: skip
    """Positions in `stream` of the checked events: for a random `user_fraction` of users, each
    user's first event on an item after the warm-up, at most `max_checks` of them.

    Only a user's first event on an item is a prediction target: a later one (a review after
    the purchase) is of an item the list may no longer show, being seen. Users are drawn from
    `users` (default: those of `stream`).
    """
    rng = random.Random(seed)
    pool = sorted(users if users is not None else {e.user_id for e in stream})
    sampled = set(rng.sample(pool, max(1, int(len(pool) * user_fraction)))) if pool else set()
    warmup = int(len(stream) * warmup_fraction)
    engaged: set[tuple[str, str]] = set()
    out: list[int] = []
    for n, ev in enumerate(stream):
        pair = (ev.user_id, ev.item_id)
        if n >= warmup and ev.user_id in sampled and len(out) < max_checks and pair not in engaged:
            out.append(n)
        engaged.add(pair)
    return out


def prequential(
    ds: ContractDataset, config: EngineConfig, index: ItemIndex, encoder: TextEncoder | None,
    *, k: int = 10, user_fraction: float = 0.2, max_checks: int = 3000,
    warmup_fraction: float = 0.2, seed: int = 0,
    progress: Callable[[int], None] | None = None,
    hits_out: dict[int, bool] | None = None,
    published_out: dict[int, bool | None] | None = None,
) -> PrequentialResult:  # fmt: skip
    """Replay `ds` through a fresh Engine and score sampled events before folding them in;
    `hits_out`, when given, receives each checked position's hit.

    `published_out`, when given, receives each check's hit against the list a streaming worker
    would have *published* for that user: the one computed right after the user's previous
    event, with the statistics of that moment (None: the user had no event before). That is
    what `llmrec eval --through-kafka` scores; the fresh list above is what a client asking at
    the moment of the event would get.
    """
    titles = {i: r.title for i, r in ds.items.items()}
    engine = Engine(config, index, encoder, titles=titles)
    stream = event_stream(ds, index)
    checks = set(
        check_positions(
            stream, users={e.user_id for e in ds.events}, user_fraction=user_fraction,
            max_checks=max_checks, warmup_fraction=warmup_fraction, seed=seed,
        )
    )  # fmt: skip
    states: dict[str, bytes] = {}
    watched = {stream[n].user_id for n in checks} if published_out is not None else set()
    last_list: dict[str, set[str]] = {}
    checked = hits = pop_hits = 0
    for n, ev in enumerate(stream):
        state = states.get(ev.user_id)
        if n in checks:
            if published_out is not None:
                published = last_list.get(ev.user_id)
                published_out[n] = None if published is None else ev.item_id in published
            seen = engine.seen(state) if state else set()
            recs = engine.recommend(state, k, ev.ts)
            hit = any(r.item_id == ev.item_id for r in recs)
            hits += hit
            if hits_out is not None:
                hits_out[n] = hit
            popular = engine.recommend(None, k, ev.ts, exclude=seen)
            pop_hits += any(r.item_id == ev.item_id for r in popular)
            checked += 1
        states[ev.user_id] = after = engine.observe(state, ev)
        if ev.user_id in watched:
            last_list[ev.user_id] = {r.item_id for r in engine.recommend(after, k, ev.ts)}
        if progress is not None and n % 1000 == 999:
            progress(1000)
    return PrequentialResult(
        len(stream), checked, k, hits / max(checked, 1), pop_hits / max(checked, 1)
    )
