"""Candidates and their unweighted features, and the linear fusion that is the fallback ranker.

`Engine.candidates` gathers them from every retrieval source; `fuse` scores them under hand-set
weights tuned on validation; a trained `llmrec.ranker` model replaces `fuse` when present.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from llmrec.types import Vectors

__all__ = ["SOURCES", "Candidates", "RetrievalConfig", "Sources", "fuse", "relevant_new"]

SOURCES: tuple[str, ...] = ("topic", "session", "covisit", "popular", "new")
"""Retrieval sources, in the column order of `Candidates.proposed`."""


@dataclass(frozen=True, slots=True)
class RetrievalConfig:
    """Candidate sources and the fusion weights of their scores."""

    per_topic_k: int = 100
    short_k: int = 50
    covisit_k: int = 200
    popular_k: int = 100
    new_k: int = 20
    w_content: float = 0.1
    w_short: float = 0.0
    w_covisit: float = 1.0
    w_popular: float = 0.05
    w_negative: float = 0.3
    w_new: float = 0.05
    recent_decay: float = 0.9
    # Review text is kept in its own user vector (matched against items' crowd-text vectors);
    # folding it into the item-description topics too measured worse on 3 of 4 datasets.
    text_weight: float = 0.0
    rating_neutral: float = 2.5
    negatives_engage: bool = True

    def scaled(self, factor: float) -> RetrievalConfig:
        """These sources with every candidate budget (hits per topic and per session,
        co-visited and popular items) times `factor`, at least one each: the trade of list
        cost against accuracy that `bench engine` and `eval` measure with --candidate-scale."""
        if not factor > 0:
            raise ValueError(f"candidate scale must be positive, got {factor}")

        def k(n: int) -> int:
            return max(1, round(n * factor))

        return replace(
            self, per_topic_k=k(self.per_topic_k), short_k=k(self.short_k),
            covisit_k=k(self.covisit_k), popular_k=k(self.popular_k),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Sources:
    """The recent item that co-visitation proposed each candidate from."""

    recent: tuple[str, ...]
    """The user's recent items, oldest first."""
    at: npt.NDArray[np.int64]
    """Per candidate row, its source's position in `recent` (-1: not proposed by one)."""

    def __getitem__(self, row: int) -> str:
        """The source item of candidate `row`, "" if none."""
        pos = int(self.at[row])
        return self.recent[pos] if pos >= 0 else ""


@dataclass(slots=True)
class Candidates:
    """One user's candidates (rows) with each source's unweighted feature, ready to fuse."""

    ids: list[str]
    vecs: Vectors
    stat_rows: npt.NDArray[np.int64]
    """Per row, the item's row in the `ItemStats` it was gathered with (-1: none)."""
    content: npt.NDArray[np.float64]
    best_topic: npt.NDArray[np.int64]
    short: npt.NDArray[np.float64]
    negative: npt.NDArray[np.float64]
    covisit: npt.NDArray[np.float64]
    popular: npt.NDArray[np.float64]
    new: npt.NDArray[np.float64]
    session: float
    sources: Sources
    """Per row, the recent item that co-visitation proposed it from ("" if none)."""
    proposed: npt.NDArray[np.float32]
    """(rows x SOURCES) flags: which retrieval sources proposed each row."""
    covisit_last: npt.NDArray[np.float64]
    """Co-visitation with the user's last liked item alone, scaled to a maximum of 1."""
    topic_sims: Vectors
    """(rows x topics) raw cosine of each row with each interest topic's centroid."""


def relevant_new(c: Candidates) -> npt.NDArray[np.float64]:
    """The "new" feature, kept only for new items in the top quarter by content similarity.

    Content cosines of a user's candidates span a narrow band (~0.6-0.7), so an ungated "new"
    boost outweighs the content term and pushes arbitrary fresh items above relevant ones.
    A user with no interest vectors yet (all content zero) gets every new item boosted.
    """
    if not np.any(c.content):
        return c.new
    cutoff = np.quantile(c.content, 0.75)
    gated: npt.NDArray[np.float64] = c.new * (c.content >= cutoff)
    return gated


def fuse(c: Candidates, r: RetrievalConfig) -> npt.NDArray[np.float64]:
    """The linear fusion of candidate features under the weights of `r`."""
    score: npt.NDArray[np.float64] = (
        r.w_content * c.content
        + r.w_short * c.session * c.short
        + r.w_covisit * c.covisit
        + r.w_popular * c.popular
        - r.w_negative * c.negative
        + r.w_new * relevant_new(c)
    )
    return score
