"""Ranker features: one row per candidate, built from the user's state and the stream statistics.

Every signal of the interest model reaches the ranker separately (best topic, its share, the
share-weighted topic match, session, negative, review-text and mood), next to the collaborative
ones (co-visitation score and rank, popularity now) and the item's own record (age, engagement
count, review count, crowd sentiment), so the ranker can learn, for example, that a cold item
must be carried by content. Missing values are NaN, which LightGBM routes on its own.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from llmrec.candidates import SOURCES, Candidates
from llmrec.interests import UserState
from llmrec.itemstats import ItemStats

__all__ = ["FEATURES", "GROUPS", "feature_matrix"]

_DAY = 86_400.0

FEATURES: tuple[str, ...] = (
    "topic_gated",
    "topic_best",
    "topic_best_share",
    "topic_weighted",
    "n_topics",
    "session_sim",
    "session_weight",
    "negative_sim",
    "negative_weight",
    "review_vs_crowd",
    "review_vs_item",
    "review_weight",
    "mood",
    "item_sentiment",
    "item_reviews_log",
    "covisit",
    "covisit_rank",
    "covisit_last",
    "popular",
    "item_age_days_log",
    "item_count_log",
    "history_len",
    "is_new",
    *(f"from_{s}" for s in SOURCES),
)

# Feature groups the evaluation ablates (a group's columns are dropped and the ranker retrained).
GROUPS: dict[str, tuple[str, ...]] = {
    "text": (
        "topic_gated", "topic_best", "topic_best_share", "topic_weighted", "session_sim",
        "negative_sim", "review_vs_crowd", "review_vs_item",
    ),
    "review": ("review_vs_crowd", "review_vs_item", "review_weight", "item_reviews_log"),
    "hierarchy": (
        "topic_best", "topic_best_share", "topic_weighted", "n_topics", "session_sim",
        "session_weight", "negative_sim", "negative_weight", "mood",
    ),
    "covisit": ("covisit", "covisit_rank", "covisit_last", "from_covisit"),
}  # fmt: skip


def _rank_desc(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """1-based rank of each positive value (largest first); NaN where the value is 0."""
    order = np.argsort(-x, kind="stable")
    rank = np.empty(len(x))
    rank[order] = np.arange(1, len(x) + 1)
    return np.where(x > 0, rank, np.nan)


def feature_matrix(
    st: UserState, c: Candidates, stats: ItemStats, now: float
) -> npt.NDArray[np.float32]:
    """The (candidates x FEATURES) matrix for one user's candidates at time `now`."""
    n = len(c.ids)
    nan = np.full(n, np.nan)
    if st.topics:
        shares = np.asarray(st.topic_shares())
        sims = c.topic_sims
        best = np.argmax(sims, axis=1)
        topic_best = sims[np.arange(n), best]
        topic_share = shares[best]
        topic_weighted = sims @ shares
    else:
        topic_best, topic_share, topic_weighted = nan, nan, nan
    rows = c.stat_rows
    if st.review is not None:
        crowd, n_reviews = stats.crowd_vectors(rows)
        vs_crowd = np.where(n_reviews > 0, crowd @ st.review, np.nan)
        vs_item = c.vecs @ st.review
    else:  # no crowd vectors gathered for a user who never wrote a review
        n_reviews, vs_crowd, vs_item = stats.review_counts(rows), nan, nan
    first = stats.first_seen(rows)
    age = np.log1p(np.maximum(now - first, 0.0) / _DAY)  # NaN stays NaN
    cols: list[npt.NDArray[np.float64] | npt.NDArray[np.float32] | float] = [
        c.content,
        topic_best,
        topic_share,
        topic_weighted,
        float(len(st.topics)),
        c.short if st.short is not None else nan,
        st.short_weight,
        c.negative if st.negative is not None else nan,
        st.negative_weight,
        vs_crowd,
        vs_item,
        st.review_weight,
        st.mood if st.mood_n > 0 else np.nan,
        stats.sentiment(rows),
        np.log1p(n_reviews),
        c.covisit,
        _rank_desc(c.covisit),
        c.covisit_last,
        c.popular,
        age,
        np.log1p(stats.counts(rows)),
        float(len(st.seen)),
        c.new,
        *(c.proposed[:, j] for j in range(len(SOURCES))),
    ]
    assert len(cols) == len(FEATURES)
    out = np.empty((n, len(FEATURES)), dtype=np.float32)
    for j, col in enumerate(cols):
        out[:, j] = col  # cast to float32 as the ranker reads it; a user's constant is one value
    return out
