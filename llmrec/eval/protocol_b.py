"""Protocol B, streaming (prequential): before each event, would its item have been published?

Every event of the dataset is replayed in time order through `Engine.observe`. For a sample of
events (all events of a random `user_fraction` of users, at most `max_checks` of them, the first
`warmup_fraction` of the stream skipped so that statistics exist), the engine first recommends
`k` items for that user at the event's time; a hit means the item was in that list. The same
checks are run for "popular now" (the engine's cold-start list, minus the user's seen items) so
the figure has a yardstick. Sampling keeps the run to minutes (a recommend call costs ~10 ms).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from llmrec.data.movielens import Dataset
from llmrec.data.replay import dataset_events
from llmrec.engine import Engine, EngineConfig
from llmrec.events import parse_event
from llmrec.index import ItemIndex
from llmrec.types import TextEncoder

__all__ = ["PrequentialResult", "prequential"]


@dataclass(frozen=True, slots=True)
class PrequentialResult:
    """Hit rates of the hybrid and of "popular now" over the checked events."""

    events: int
    checked: int
    k: int
    hybrid_hr: float
    popular_hr: float


def prequential(
    ds: Dataset, config: EngineConfig, index: ItemIndex, encoder: TextEncoder | None,
    *, k: int = 10, user_fraction: float = 0.2, max_checks: int = 3000,
    warmup_fraction: float = 0.2, seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> PrequentialResult:  # fmt: skip
    """Replay `ds` through a fresh Engine and score sampled events before folding them in."""
    titles = {i: m.title for i, m in ds.movies.items()}
    engine = Engine(config, index, encoder, titles=titles)
    rng = random.Random(seed)
    users = sorted({r.user_id for r in ds.ratings})
    sampled = set(rng.sample(users, max(1, int(len(users) * user_fraction))))
    raw = list(dataset_events(ds))
    warmup = int(len(raw) * warmup_fraction)
    states: dict[str, bytes] = {}
    checked = hits = pop_hits = 0
    for n, rec in enumerate(raw):
        ev = parse_event(rec)
        state = states.get(ev.user_id)
        check = (
            n >= warmup and ev.user_id in sampled and checked < max_checks
            and ev.type.value != "review"
        )  # fmt: skip
        if check:
            seen = engine.seen(state) if state else set()
            recs = engine.recommend(state, k, ev.ts)
            hits += any(r.item_id == ev.item_id for r in recs)
            popular = engine.recommend(None, k, ev.ts, exclude=seen)
            pop_hits += any(r.item_id == ev.item_id for r in popular)
            checked += 1
        states[ev.user_id] = engine.observe(state, ev)
        if progress is not None and n % 1000 == 999:
            progress(1000)
    return PrequentialResult(
        len(raw), checked, k, hits / max(checked, 1), pop_hits / max(checked, 1)
    )
