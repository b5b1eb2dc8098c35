"""Reasons shown with each recommended item, from the candidate's features and the user state.

Whatever ranked the list (the learned ranker or the fusion), the reasons come from the same
evidence the features carry, so they stay true to why the item was a candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


def _crowd_match(st: UserState, ids: list[str], stats: ItemStats) -> npt.NDArray[np.float64]:
    """Cosine of the user's review vector with each item's crowd-text vector (0 if none)."""
    if st.review is None or not ids:
        return np.zeros(len(ids))
    crowd, n = stats.crowd_vectors(stats.rows(ids))
    return np.where(n > 0, crowd @ st.review, 0.0)


def _reasons(c: Candidates, j: int, topic: str, crowd: float, title: Title) -> list[str]:
    reasons = []
    if c.sources[j] and c.covisit[j] >= 0.2:
        reasons.append(f"because you watched {title(c.sources[j])}")
    if topic and c.content[j] >= 0.3:
        reasons.append(f"matches your interest in {topic}")
    if crowd >= _CROWD_MATCH:
        reasons.append("reviewed in words like yours")
    if c.popular[j] >= 0.3:
        reasons.append("popular now")
    if c.new[j]:
        reasons.append("new")
    return reasons or ["popular now" if c.popular[j] > 0 else "similar to your taste"]


def explain(
    st: UserState, c: Candidates, picks: Sequence[int], score: npt.NDArray[np.float64], *,
    index: ItemIndex, stats: ItemStats, title: Title,
) -> list[RecommendedItem]:  # fmt: skip
    """The picked rows of `c` as recommended items, each with its reasons."""
    labels = topic_labels(st, index, title)
    crowd = _crowd_match(st, [c.ids[j] for j in picks], stats)
    out = []
    for n, j in enumerate(picks):
        topic = labels[int(c.best_topic[j])] if c.best_topic[j] >= 0 else ""
        reasons = _reasons(c, j, topic, float(crowd[n]), title)
        out.append(RecommendedItem(item_id=c.ids[j], score=float(score[j]), reasons=reasons))
    return out
