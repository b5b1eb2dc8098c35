"""The evaluation's view of a dataset: item order, the split, binary matrices, events, vectors."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

from llmrec.data.movielens import Dataset, Interaction
from llmrec.data.replay import rating_event
from llmrec.eval.split import LeaveLastOut, leave_last_out
from llmrec.events import Event, parse_event
from llmrec.index import ItemIndex
from llmrec.items import item_text
from llmrec.types import TextEncoder

__all__ = ["EvalData", "build_index", "prepare", "train_events"]


@dataclass(slots=True)
class EvalData:
    """Everything Protocol A needs, built once per dataset."""

    dataset: Dataset
    items: list[str]
    col: dict[str, int]
    users: list[str]
    split: LeaveLastOut
    x_train: sparse.csr_matrix
    train_counts: npt.NDArray[np.int64]


def prepare(ds: Dataset) -> EvalData:
    """Split `ds` leave-last-out and build the train matrix over evaluated users."""
    items = sorted(ds.movies, key=lambda i: (len(i), i))
    col = {m: j for j, m in enumerate(items)}
    split = leave_last_out(ds.ratings)
    users = sorted(split.test, key=lambda u: (len(u), u))
    rows, cols = [], []
    for ui, u in enumerate(users):
        for r in split.train[u]:
            rows.append(ui)
            cols.append(col[r.item_id])
    x = sparse.csr_matrix(
        (np.ones(len(rows)), (rows, cols)), shape=(len(users), len(items)), dtype=np.float64
    )
    x.data[:] = 1.0  # binarise duplicates
    counts = np.zeros(len(items), dtype=np.int64)
    for hist in split.train.values():
        for r in hist:
            counts[col[r.item_id]] += 1
    return EvalData(ds, items, col, users, split, x, counts)


def item_texts(ds: Dataset, items: Sequence[str]) -> list[str]:
    """The item text recipe applied to each movie, in `items` order."""
    return [item_text(ds.movies[i].title, ds.movies[i].genres) for i in items]


def build_index(
    ds: Dataset, items: Sequence[str], encoder: TextEncoder, batch: int = 256
) -> tuple[ItemIndex, npt.NDArray[np.float32]]:
    """Encode every item and load an ItemIndex; returns it with the (n, dim) vectors."""
    texts = item_texts(ds, items)
    vecs = np.concatenate(
        [encoder.encode(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    ).astype(np.float32)
    index = ItemIndex(encoder.dim)
    index.upsert(list(items), vecs)
    return index, vecs


def train_events(data: EvalData) -> Iterator[Event]:
    """All train interactions, every user, merged in timestamp order, as llmrec events."""
    rows: list[Interaction] = [r for hist in data.split.train.values() for r in hist]
    rows.sort(key=lambda r: r.ts)
    last_train = {u: h[-1].ts for u, h in data.split.train.items() if h}
    tags = [t for t in data.dataset.tags if t.ts <= last_train.get(t.user_id, -1)]
    tags.sort(key=lambda t: t.ts)
    ti = 0
    for n, r in enumerate(rows):
        while ti < len(tags) and tags[ti].ts < r.ts:
            t = tags[ti]
            ti += 1
            yield parse_event(
                {"event_id": f"t{ti}", "type": "review", "user_id": t.user_id,
                 "item_id": t.item_id, "ts": t.ts, "text": t.tag}
            )  # fmt: skip
        yield parse_event(rating_event(r, f"r{n}"))
