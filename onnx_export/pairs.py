"""Training pairs for `llmrec tune-encoder`, from the evaluation's train split only.

Two kinds of (anchor, positive) texts, both normalised exactly as the serving encoder
normalises its input:
- next item: a user's engaged item, then the next item that user engaged with (an event the
  engine weighs > 0, so a low rating or a dislike never pairs);
- review: what a user wrote about an item, then that item's text. Negative reviews are kept:
  the engine pushes a user away from a negative review's vector, which only works when that
  vector sits near the item the review is about.

Only `EvalData.train_events` are read, so no validation or test item of the evaluation ever
trains the encoder. No torch here: this module is cheap to import and to unit-test.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from llmrec.encoder.text import normalize_text
from llmrec.engine import Engine, EngineConfig
from llmrec.eval.data import EvalData, item_texts
from llmrec.events import Event
from llmrec.index import ItemIndex

__all__ = ["Pair", "TrainingPairs", "batches", "build_pairs", "engine_weigh"]

Pair = tuple[str, str]
Weigh = Callable[[Event], float]


@dataclass(frozen=True, slots=True)
class TrainingPairs:
    """Deduplicated (anchor, positive) pairs by kind, in first-seen (time) order."""

    next_item: tuple[Pair, ...]
    review: tuple[Pair, ...]

    @property
    def all(self) -> list[Pair]:
        return [*self.next_item, *self.review]

    def counts(self) -> dict[str, int]:
        return {"next_item": len(self.next_item), "review": len(self.review)}

    def sha256(self) -> str:
        """Hash of the sorted pair list: names the training data in the manifest."""
        rows = sorted(
            [("next_item", a, p) for a, p in self.next_item]
            + [("review", a, p) for a, p in self.review]
        )
        return hashlib.sha256(orjson.dumps(rows)).hexdigest()


def engine_weigh(config: EngineConfig | None = None) -> Weigh:
    """The engine's own event weight (no encoder, so a review without a rating weighs 0)."""
    # Engine.event_weight reads only the config; a 1-d index is the cheapest Engine to build.
    return Engine(config or EngineConfig(), ItemIndex(1)).event_weight


def build_pairs(data: EvalData, weigh: Weigh | None = None) -> TrainingPairs:
    """Next-item and review pairs from `data.train_events` (time order, ties in file order)."""
    weight = weigh or engine_weigh()
    text = dict(zip(data.items, item_texts(data.dataset, data.items), strict=True))
    last: dict[str, str] = {}  # user -> item of that user's latest positive event
    next_item: dict[Pair, None] = {}  # an insertion-ordered set
    review: dict[Pair, None] = {}
    for e in data.train_events:
        if e.text and e.text.strip():
            review[(e.text, text[e.item_id])] = None
        if weight(e) <= 0:
            continue
        prev = last.get(e.user_id)
        if prev is not None and prev != e.item_id:
            next_item[(text[prev], text[e.item_id])] = None
        last[e.user_id] = e.item_id
    return TrainingPairs(_clean(next_item), _clean(review))


def _clean(pairs: dict[Pair, None]) -> tuple[Pair, ...]:
    """Normalise both texts, then drop repeats and pairs whose two texts are the same."""
    out: dict[Pair, None] = {}
    for a, p in pairs:
        na, np_ = normalize_text(a), normalize_text(p)
        if na != np_:
            out[(na, np_)] = None
    return tuple(out)


def batches(pairs: Sequence[Pair], size: int, seed: int) -> list[list[Pair]]:
    """Shuffle `pairs` (seeded) into batches in which no text appears twice.

    In-batch negatives treat every other pair's positive as a negative; a catalogue of a few
    hundred items repeats item texts often, and a repeat inside a batch would be a false
    negative. A pair goes into the first open batch that has neither of its texts. Batches of
    one pair (no negative to learn from) are dropped.
    """
    if size < 2:
        raise ValueError(f"batch size must be at least 2 for in-batch negatives; got {size}")
    order = list(pairs)
    random.Random(seed).shuffle(order)
    done: list[list[Pair]] = []
    open_: list[tuple[list[Pair], set[str]]] = []
    for pair in order:
        for i, (batch, seen) in enumerate(open_):
            if pair[0] not in seen and pair[1] not in seen:
                batch.append(pair)
                seen.update(pair)
                if len(batch) == size:
                    done.append(batch)
                    del open_[i]
                break
        else:
            open_.append(([pair], set(pair)))
    done.extend(batch for batch, _ in open_ if len(batch) > 1)
    return done
