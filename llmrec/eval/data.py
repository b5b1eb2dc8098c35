"""The evaluation's view of a contract dataset: integer ids, the leave-last-out split, events.

The unit of the split is a distinct (user, item) pair, timed by its first event; repeated
events on a pair are collapsed for the split (and counted). Per user, pairs in time order (ties
in file order): last = test, second-last = validation, the rest = train. Users with at least 3
distinct items are evaluated; the others are train-only, and every model learns from every
user's train pairs. Nothing about a held-out pair reaches training: every event on a user's
validation or test item (its rating, its review text, a repeat) is kept out of the train
stream, whatever its timestamp.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from llmrec.data.contract import ContractDataset
from llmrec.eval.trainset import F64, I64, TrainSet
from llmrec.events import Event
from llmrec.index import ItemIndex
from llmrec.items import item_text
from llmrec.types import TextEncoder, Vectors

__all__ = ["MIN_EVAL_ITEMS", "EvalData", "build_index", "item_texts", "prepare"]

MIN_EVAL_ITEMS = 3


@dataclass(slots=True)
class EvalData:
    """Everything Protocol A needs, built once per dataset.

    `users` holds every user; `evaluated` the integer ids of those with a held-out pair, and
    `val_item` / `test_item` / `val_ts` / `test_ts` are aligned with it.
    """

    dataset: ContractDataset
    items: list[str]
    col: dict[str, int]
    users: list[str]
    train: TrainSet
    evaluated: I64
    val_item: I64
    test_item: I64
    val_ts: F64
    test_ts: F64
    train_events: list[Event]
    val_events: dict[str, list[Event]]
    counts: dict[str, int] = field(default_factory=dict)


def prepare(ds: ContractDataset) -> EvalData:
    """Index `ds`, split it leave-last-out by pair, and gather the train event stream."""
    items = sorted(ds.items, key=lambda i: (len(i), i))
    col = {m: j for j, m in enumerate(items)}
    known = [e for e in ds.events if e.item_id in col]
    # Stable sort: events with equal timestamps keep file order.
    ordered = sorted(known, key=lambda e: e.ts)
    pairs: dict[str, dict[str, float]] = defaultdict(dict)  # user -> item -> first ts (ordered)
    repeats = 0
    for e in ordered:
        seen = pairs[e.user_id]
        if e.item_id in seen:
            repeats += 1
        else:
            seen[e.item_id] = e.ts
    users = sorted(pairs, key=lambda u: (len(u), u))
    histories: list[I64] = []
    times: list[F64] = []
    held: dict[str, tuple[str, str]] = {}
    evaluated, val_item, test_item, val_ts, test_ts = [], [], [], [], []
    for ui, u in enumerate(users):
        seq = list(pairs[u].items())
        if len(seq) >= MIN_EVAL_ITEMS:
            (v, vt), (t, tt) = seq[-2], seq[-1]
            held[u] = (v, t)
            evaluated.append(ui)
            val_item.append(col[v])
            test_item.append(col[t])
            val_ts.append(vt)
            test_ts.append(tt)
            seq = seq[:-2]
        histories.append(np.array([col[i] for i, _ in seq], dtype=np.int64))
        times.append(np.array([ts for _, ts in seq], dtype=np.float64))
    train_events: list[Event] = []
    val_events: dict[str, list[Event]] = defaultdict(list)
    for e in ordered:
        h = held.get(e.user_id)
        if h is None or e.item_id not in h:
            train_events.append(e)
        elif e.item_id == h[0]:
            val_events[e.user_id].append(e)
    counts = {
        "events": len(ds.events),
        "events_unknown_item": len(ds.events) - len(known),
        "invalid_records": len(ds.errors),
        "pairs": sum(len(p) for p in pairs.values()),
        "repeated_pair_events": repeats,
        "train_events": len(train_events),
    }
    return EvalData(
        dataset=ds,
        items=items,
        col=col,
        users=users,
        train=TrainSet(len(items), histories, times),
        evaluated=np.array(evaluated, dtype=np.int64),
        val_item=np.array(val_item, dtype=np.int64),
        test_item=np.array(test_item, dtype=np.int64),
        val_ts=np.array(val_ts, dtype=np.float64),
        test_ts=np.array(test_ts, dtype=np.float64),
        train_events=train_events,
        val_events=dict(val_events),
        counts=counts,
    )


def item_texts(ds: ContractDataset, items: Sequence[str]) -> list[str]:
    """The item text recipe applied to each catalogue record, in `items` order."""
    recs = [ds.items[i] for i in items]
    return [item_text(r.title, r.categories, r.tags, r.description) for r in recs]


def build_index(
    ds: ContractDataset, items: Sequence[str], encoder: TextEncoder, batch: int = 256
) -> tuple[ItemIndex, Vectors]:
    """Encode every item and load an ItemIndex; returns it with the (n, dim) vectors."""
    texts = item_texts(ds, items)
    vecs = np.concatenate(
        [encoder.encode(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    ).astype(np.float32)
    index = ItemIndex(encoder.dim)
    index.upsert(list(items), vecs)
    return index, vecs
