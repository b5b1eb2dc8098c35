"""Ranker features: one row per candidate, built from the user's state and the stream statistics.

Every signal of the interest model reaches the ranker separately (best topic, its share, the
share-weighted topic match, session, negative, review-text and mood), next to the collaborative
ones (co-visitation score and rank, popularity now) and the item's own record (age, engagement
count, review count, crowd sentiment), so the ranker can learn, for example, that a cold item
must be carried by content. Missing values are NaN, which LightGBM routes on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from llmrec.candidates import SOURCES, Candidates
from llmrec.interests import UserState
from llmrec.itemstats import ItemStats

__all__ = ["FEATURES", "GROUPS", "feature_matrices", "feature_matrix"]

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
    return feature_matrices([(st, c, now)], stats)


_AT = {name: j for j, name in enumerate(FEATURES)}
# How each column is filled: from the item statistics, one value per user, read straight off
# the candidates, the sources that proposed them, or computed per user (`_per_user`).
_ITEM = ("item_sentiment", "item_reviews_log", "item_age_days_log", "item_count_log")
_USER = ("n_topics", "session_weight", "negative_weight", "review_weight", "mood", "history_len")
_PLAIN = ("topic_gated", "covisit", "covisit_last", "popular", "is_new")
_SOURCE = tuple(f"from_{s}" for s in SOURCES)
_OWN = (
    "topic_best", "topic_best_share", "topic_weighted", "session_sim", "negative_sim",
    "review_vs_crowd", "review_vs_item", "covisit_rank",
)  # fmt: skip
# every column filled exactly once: the matrix starts uninitialised
assert sorted(_ITEM + _USER + _PLAIN + _SOURCE + _OWN) == sorted(FEATURES)


def feature_matrices(
    users: Sequence[tuple[UserState, Candidates, float]], stats: ItemStats
) -> npt.NDArray[np.float32]:
    """`feature_matrix` of several users' candidates (each at its own `now`), stacked in
    order: the item-side columns and the columns shared by a user's rows are filled for every
    user at once, elementwise, so each value is the one `feature_matrix` gives alone."""
    sizes = [len(c.ids) for _, c, _ in users]
    out = np.empty((sum(sizes), len(FEATURES)), dtype=np.float32)
    if not users:
        return out
    # cast to float32 as the ranker reads it; a user's constant is one value for its rows
    rows = np.concatenate([c.stat_rows for _, c, _ in users])
    now = np.repeat([now for _, _, now in users], sizes)
    n_reviews = stats.review_counts(rows)
    out[:, _AT["item_sentiment"]] = stats.sentiment(rows)
    out[:, _AT["item_reviews_log"]] = np.log1p(n_reviews)
    first = stats.first_seen(rows)
    out[:, _AT["item_age_days_log"]] = np.log1p(np.maximum(now - first, 0.0) / _DAY)  # NaN stays
    out[:, _AT["item_count_log"]] = np.log1p(stats.counts(rows))
    constants = [
        (
            float(len(st.topics)), st.short_weight, st.negative_weight, st.review_weight,
            st.mood if st.mood_n > 0 else np.nan, float(len(st.seen)),
        )
        for st, _, _ in users
    ]  # fmt: skip
    out[:, [_AT[name] for name in _USER]] = np.repeat(constants, sizes, axis=0)
    out[:, [_AT[name] for name in _PLAIN]] = np.concatenate(
        [np.stack([c.content, c.covisit, c.covisit_last, c.popular, c.new], axis=1)
         for _, c, _ in users]
    )  # fmt: skip
    out[:, [_AT[name] for name in _SOURCE]] = np.concatenate([c.proposed for _, c, _ in users])
    pos = 0
    for (st, c, _), n in zip(users, sizes, strict=True):
        _per_user(out[pos : pos + n], st, c, stats)
        pos += n
    return out


def _per_user(out: npt.NDArray[np.float32], st: UserState, c: Candidates, stats: ItemStats) -> None:
    """The columns computed from one user's own vectors and scores, into its rows `out`."""
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
    if st.review is not None:
        crowd, n_reviews = stats.crowd_vectors(c.stat_rows)
        vs_crowd = np.where(n_reviews > 0, crowd @ st.review, np.nan)
        vs_item = c.vecs @ st.review
    else:  # no crowd vectors gathered for a user who never wrote a review
        vs_crowd, vs_item = nan, nan
    cols = (
        topic_best, topic_share, topic_weighted,
        c.short if st.short is not None else nan,
        c.negative if st.negative is not None else nan,
        vs_crowd, vs_item, _rank_desc(c.covisit),
    )  # fmt: skip
    for name, col in zip(_OWN, cols, strict=True):
        out[:, _AT[name]] = col
