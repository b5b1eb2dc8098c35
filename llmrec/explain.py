"""Reasons shown with each recommended item, from the candidate's features and the user state.

Whatever ranked the list (the learned ranker or the fusion), the reasons come from the same
evidence the features carry, so they stay true to why the item was a candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from llmrec.candidates import Candidates
from llmrec.events import RecommendedItem
from llmrec.index import ItemIndex
from llmrec.interests import UserState
from llmrec.itemstats import ItemStats

__all__ = ["explain", "topic_labels"]

Title = Callable[[str], str]
_CROWD_MATCH = 0.5


def topic_labels(st: UserState, index: ItemIndex, title: Title) -> list[str]:
    """Name each topic by the user's recent liked item closest to its centroid."""
    positives = [i for i, w in st.recent if w > 0 and i in index]
    if not positives or not st.topics:
        return ["your earlier picks"] * len(st.topics)
    sims = index.vectors(positives) @ np.stack([t.centroid for t in st.topics]).T
    return [f"titles like {title(positives[int(j)])}" for j in np.argmax(sims, axis=0)]


def _crowd_match(
    st: UserState, rows: npt.NDArray[np.int64], stats: ItemStats
) -> npt.NDArray[np.float64]:
    """Cosine of the user's review vector with the crowd-text vector of each of the items'
    `rows` in `stats` (0 if none)."""
    if st.review is None or not len(rows):
        return np.zeros(len(rows))
    crowd, n = stats.crowd_vectors(rows)
    return np.where(n > 0, crowd @ st.review, 0.0)


@dataclass(frozen=True, slots=True)
class _Evidence:
    """What the reasons read of one picked candidate, as plain values."""

    source: str
    covisit: float
    topic: str
    content: float
    crowd: float
    popular: float
    new: float


def _reasons(e: _Evidence, title: Title) -> list[str]:
    reasons = []
    if e.source and e.covisit >= 0.2:
        reasons.append(f"because you watched {title(e.source)}")
    if e.topic and e.content >= 0.3:
        reasons.append(f"matches your interest in {e.topic}")
    if e.crowd >= _CROWD_MATCH:
        reasons.append("reviewed in words like yours")
    if e.popular >= 0.3:
        reasons.append("popular now")
    if e.new:
        reasons.append("new")
    return reasons or ["popular now" if e.popular > 0 else "similar to your taste"]


def explain(
    st: UserState, c: Candidates, picks: Sequence[int], score: npt.NDArray[np.float64], *,
    index: ItemIndex, stats: ItemStats, title: Title,
) -> list[RecommendedItem]:  # fmt: skip
    """The picked rows of `c` as recommended items, each with its reasons."""
    labels = topic_labels(st, index, title)
    rows = np.asarray(picks, dtype=np.intp)
    ids = [c.ids[j] for j in picks]
    topics = [labels[t] if t >= 0 else "" for t in c.best_topic[rows].tolist()]
    # read once per list as Python values: numpy scalars would cost more than the rules
    evidence = zip(
        [c.sources[j] for j in picks], c.covisit[rows].tolist(), topics,
        c.content[rows].tolist(), _crowd_match(st, c.stat_rows[rows], stats).tolist(),
        c.popular[rows].tolist(), c.new[rows].tolist(), strict=True,
    )  # fmt: skip
    return [
        RecommendedItem(item_id=i, score=s, reasons=_reasons(_Evidence(*e), title))
        for i, s, e in zip(ids, score[rows].tolist(), evidence, strict=True)
    ]
