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
from collections.abc import Callable
from dataclasses import dataclass

from llmrec.data.contract import ContractDataset
from llmrec.engine import Engine, EngineConfig
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
    ds: ContractDataset, config: EngineConfig, index: ItemIndex, encoder: TextEncoder | None,
    *, k: int = 10, user_fraction: float = 0.2, max_checks: int = 3000,
    warmup_fraction: float = 0.2, seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> PrequentialResult:  # fmt: skip
    """Replay `ds` through a fresh Engine and score sampled events before folding them in."""
    titles = {i: r.title for i, r in ds.items.items()}
    engine = Engine(config, index, encoder, titles=titles)
    rng = random.Random(seed)
    users = sorted({e.user_id for e in ds.events})
    sampled = set(rng.sample(users, max(1, int(len(users) * user_fraction))))
    stream = sorted((e for e in ds.events if e.item_id in index), key=lambda e: e.ts)
    warmup = int(len(stream) * warmup_fraction)
    states: dict[str, bytes] = {}
    engaged: set[tuple[str, str]] = set()
    checked = hits = pop_hits = 0
    for n, ev in enumerate(stream):
        state = states.get(ev.user_id)
        pair = (ev.user_id, ev.item_id)
        # Only a user's first event on an item is a prediction target: a later one (a review
        # after the purchase) is of an item the list may no longer show, being seen.
        check = (
            n >= warmup and ev.user_id in sampled and checked < max_checks
            and pair not in engaged
        )  # fmt: skip
        engaged.add(pair)
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
        len(stream), checked, k, hits / max(checked, 1), pop_hits / max(checked, 1)
    )
