"""Candidates for a batch of users, gathered together.

Every user's interest-topic and session vectors go to the item index in one hnswlib call per
result size (users with the same number of recent items to skip share one); the candidates are
then assembled, de-duplicated and filtered as integer label arrays (seen and disliked items by
their id hashes), and their features computed with numpy over those arrays. The co-visitation
graph's candidates come as its integer keys, mapped to index labels by one array (`KeyLabels`).
Item ids appear at the edges: the popularity prior is keyed by id, and so are the candidates
handed to the ranker and the explanations.

The order of a user's candidates is their order of first appearance across the sources
(popular, new, co-visited, after the last item, then index hits by topic and by session): the
linear fusion and MMR break ties by it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from llmrec.arrays import first_seen
from llmrec.candidates import SOURCES, Candidates, RetrievalConfig, Sources
from llmrec.covisit import CoVisitation
from llmrec.index import ItemIndex, Labels
from llmrec.interests import UserState
from llmrec.itemstats import ItemStats
from llmrec.types import Vectors

__all__ = ["KeyLabels", "Shared", "StatRows", "gather"]

_NONE: Labels = np.zeros(0, dtype=np.int64)
_NONE.setflags(write=False)  # shared by every user without hits


@dataclass(frozen=True, slots=True)
class Shared:
    """What every user of a batch gets alike: the popular items (best first) with each one's
    share of the top one's, and the newest items."""

    popular: Sequence[str]
    popular_share: npt.NDArray[np.float64]
    new: Sequence[str]


class KeyLabels:
    """The index label of each co-visitation key (-1 where the index lacks the item), so the
    graph's candidates reach the index without an id looked up per candidate. Only what may
    have changed is looked up again: the keys without a label when the index has given new
    labels, the keys the graph interned since; all of them after a delete, or when the index
    or the graph is replaced."""

    def __init__(self) -> None:
        self._of: tuple[ItemIndex, CoVisitation, int] | None = None
        self._given = 0
        self._labels: Labels = np.zeros(0, dtype=np.int64)

    def __call__(self, index: ItemIndex, covisit: CoVisitation) -> Labels:
        # read before the lookups: a write after them makes the next call look again
        names, deletions, given = covisit.names, index.deletions, index.labels_given
        of = self._of
        if of is None or of[0] is not index or of[1] is not covisit or of[2] != deletions:
            self._of = (index, covisit, deletions)
            self._labels = index.labels(names)
        else:
            labels = self._labels
            if given != self._given:
                missing = np.flatnonzero(labels == -1)
                if missing.size:
                    labels = labels.copy()  # the caller's batch may still hold the old one
                    labels[missing] = index.labels([names[i] for i in missing.tolist()])
            if len(labels) < len(names):
                labels = np.concatenate([labels, index.labels(names[len(labels) :])])
            self._labels = labels
        self._given = given
        return self._labels


class StatRows:
    """The `ItemStats` row of each index label (-1: the statistics never heard of its item),
    so a candidate's statistics are read without its id looked up. Neither a label's id nor an
    item's row ever changes once given, so only what is new is looked up: labels given since
    the last call, and the labels of items the statistics gained since; all of it again only
    when the index or the statistics are replaced."""

    def __init__(self) -> None:
        self._of: tuple[ItemIndex, ItemStats] | None = None
        self._rows: Labels = np.zeros(0, dtype=np.int64)
        self._known = 0  # statistics rows already placed

    def __call__(self, index: ItemIndex, stats: ItemStats) -> Labels:
        if self._of is None or self._of[0] is not index or self._of[1] is not stats:
            self._of, self._rows, self._known = (index, stats), np.zeros(0, dtype=np.int64), 0
        fresh = index.label_ids(len(self._rows))
        if fresh:
            self._rows = np.concatenate([self._rows, stats.rows(fresh)])
        if len(stats) > self._known:
            labels = index.labels(stats.ids_from(self._known))
            rows = np.arange(self._known, self._known + len(labels))
            placed = (labels >= 0) & (labels < len(self._rows))
            self._rows[labels[placed]] = rows[placed]
            self._known += len(labels)
        return self._rows


@dataclass(frozen=True, slots=True)
class _Batch:
    """What each user's assembly reads: the sources and the shared items' labels."""

    index: ItemIndex
    covisit: CoVisitation
    shared: Shared
    r: RetrievalConfig
    pop_labels: Labels
    new_labels: Labels
    key_labels: Labels
    stat_rows: Labels


@dataclass(slots=True)
class _Found:
    """One user's index hits (labels), by topic (one array a topic) and by session, in rank
    order."""

    by_topic: list[Labels]
    by_session: Labels


def gather(
    index: ItemIndex,
    covisit: CoVisitation,
    shared: Shared,
    r: RetrievalConfig,
    users: Sequence[tuple[UserState, Collection[str]]],
    *,
    stat_rows: Labels,
    key_labels: KeyLabels | None = None,
) -> list[Candidates | None]:
    """Each (state, excluded ids) user's candidates with their unweighted features; None for
    a user left with none. `stat_rows` is `StatRows` of this index; `key_labels` the caller's
    cache, kept across calls."""
    found = _search(index, r, users)
    batch = _Batch(
        index,
        covisit,
        shared,
        r,
        index.labels(shared.popular),
        index.labels(list(shared.new)),
        (key_labels or KeyLabels())(index, covisit),
        stat_rows,
    )
    return [
        _assemble(batch, st, exclude, hits)
        for (st, exclude), hits in zip(users, found, strict=True)
    ]


def _search(
    index: ItemIndex, r: RetrievalConfig, users: Sequence[tuple[UserState, Collection[str]]]
) -> list[_Found]:
    """Every user's topic and session queries in one `nearest_each` call: a query asks for
    its `k` plus the user's excluded items (dropped after), as `ItemIndex.search`."""
    found = [_Found([], _NONE) for _ in users]
    queries: list[tuple[int, bool, int, npt.NDArray[np.float32]]] = []  # user, session?, k, q
    skip: list[Labels] = []
    for u, (st, exclude) in enumerate(users):
        excluded = set(exclude) | {i for i, _ in st.recent}
        skip.append(index.labels(list(excluded)))
        if r.per_topic_k > 0:
            queries += [(u, False, r.per_topic_k, t.centroid) for t in st.topics]
        if st.short is not None and st.short_weight > 0 and r.short_k > 0:
            queries.append((u, True, r.short_k, st.short))
    if not queries:
        return found
    rows = index.nearest_each(
        np.stack([q[3] for q in queries]), [k + len(skip[u]) for u, _, k, _ in queries]
    )
    for (u, session, k, _), row in zip(queries, rows, strict=True):
        hits = row[_without(row, skip[u])][:k]
        if session:
            found[u].by_session = hits
        else:
            found[u].by_topic.append(hits)
    return found


def _without(values: npt.NDArray[np.int64], banned: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Which of `values` are not in `banned`: a binary search in the sorted `banned`, several
    times cheaper than `np.isin` at a thousand banned hashes."""
    if not banned.size:
        return np.ones(len(values), dtype=bool)
    ordered = np.sort(banned)
    at = np.minimum(np.searchsorted(ordered, values), ordered.size - 1)
    kept: npt.NDArray[np.bool_] = ordered[at] != values
    return kept


class _Rows:
    """Where labels sit among a user's candidates (`labels`, unique): one array over the
    labels up to `top` holds each candidate's row (-1: not a candidate), so a lookup is one
    gather. Its last slot stays -1: label -1 (an item the index lacks) reads it."""

    def __init__(self, labels: Labels, top: int) -> None:
        self.labels = labels
        self._row = np.full(top + 1, -1, dtype=np.intp)
        self._row[labels] = np.arange(len(labels))

    def of(self, some: Labels) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
        """The row of each of `some` (labels below `top`, or -1), and which are candidates."""
        rows = self._row[some]
        return rows, rows >= 0

    def column(
        self,
        placed: tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]],
        values: npt.NDArray[np.float64] | float,
    ) -> npt.NDArray[np.float64]:
        """A candidates-long column: `values` at the rows `of` found, 0 elsewhere."""
        rows, hit = placed
        out = np.zeros(len(self.labels))
        out[rows[hit]] = values[hit] if isinstance(values, np.ndarray) else values
        return out


def _assemble(
    b: _Batch, st: UserState, exclude: Collection[str], found: _Found
) -> Candidates | None:
    index, covisit, shared, r = b.index, b.covisit, b.shared, b.r
    pop_labels, new_labels = b.pop_labels, b.new_labels
    n_recent = len(st.recent)
    recent = [
        (i, w * r.recent_decay ** (n_recent - 1 - pos)) for pos, (i, w) in enumerate(st.recent)
    ]
    cov_keys, cov_scores, cov_from = covisit.top_keys(recent, r.covisit_k + n_recent)
    # Neighbours of the last liked item alone: the "what comes next" signal, for the ranker.
    last = [(i, 1.0) for i, w in st.recent[-1:] if w > 0]
    last_keys, last_scores, _ = covisit.top_keys(last, r.covisit_k)
    cov_labels, last_labels = b.key_labels[cov_keys], b.key_labels[last_keys]
    topic_labels = np.concatenate(found.by_topic) if found.by_topic else _NONE
    session_labels = found.by_session
    listed = np.concatenate(
        [pop_labels, new_labels, cov_labels, last_labels, topic_labels, session_labels]
    )
    top = int(listed.max()) + 1 if listed.size else 0  # every label looked up is in `listed`
    labels = first_seen(listed[listed >= 0], top)
    if exclude:
        labels = labels[_without(labels, index.labels(list(exclude)))]
    banned = np.fromiter((*st.seen, *st.disliked), np.int64, len(st.seen) + len(st.disliked))
    labels = labels[_without(index.hashes(labels), banned)]
    labels, ids, vecs = index.resolve(labels)
    if not ids:
        return None
    at = _Rows(labels, top)
    on_pop, on_new, on_cov = at.of(pop_labels), at.of(new_labels), at.of(cov_labels)
    pop = at.column(on_pop, shared.popular_share)
    is_new = at.column(on_new, 1.0)
    cov = at.column(on_cov, cov_scores)
    source_at = np.full(len(ids), -1, dtype=np.int64)
    source_at[on_cov[0][on_cov[1]]] = cov_from[on_cov[1]]
    last_col = np.zeros(len(ids))
    if len(last_scores):
        last_col = at.column(at.of(last_labels), last_scores / last_scores.max())
    proposed = np.zeros((len(ids), len(SOURCES)), dtype=np.float32)
    for j, placed in enumerate((at.of(topic_labels), at.of(session_labels), on_cov, on_pop)):
        proposed[:, j] = at.column(placed, 1.0)
    proposed[:, SOURCES.index("new")] = is_new
    sources = Sources(tuple(i for i, _ in recent), source_at)
    return _features(
        st, ids, vecs, b.stat_rows[labels], pop=pop, is_new=is_new, cov=cov, sources=sources,
        last=last_col, proposed=proposed,
    )  # fmt: skip


def _features(
    st: UserState,
    ids: list[str],
    vecs: Vectors,
    stat_rows: Labels,
    *,
    pop: npt.NDArray[np.float64],
    is_new: npt.NDArray[np.float64],
    cov: npt.NDArray[np.float64],
    sources: Sources,
    last: npt.NDArray[np.float64],
    proposed: npt.NDArray[np.float32],
) -> Candidates:
    n = len(ids)
    content = np.zeros(n)
    best_topic = np.full(n, -1)
    sims = np.zeros((n, 0), dtype=np.float32)
    if st.topics:
        shares = np.asarray(st.topic_shares())
        sims = vecs @ np.stack([t.centroid for t in st.topics]).T
        gated = sims * (0.5 + 0.5 * shares / max(shares.max(), 1e-9))
        best_topic = np.argmax(gated, axis=1)
        content = gated[np.arange(n), best_topic]
    zeros = np.zeros(n)
    short = vecs @ st.short if st.short is not None else zeros
    negative = np.clip(vecs @ st.negative, 0.0, None) if st.negative is not None else zeros
    return Candidates(
        ids=ids,
        vecs=vecs,
        stat_rows=stat_rows,
        content=content,
        best_topic=best_topic,
        short=np.asarray(short, dtype=np.float64),
        negative=np.asarray(negative, dtype=np.float64),
        covisit=cov / cov.max() if cov.max() > 0 else cov,
        popular=pop,
        new=is_new,
        session=min(1.0, st.short_weight),
        sources=sources,
        proposed=proposed,
        covisit_last=last,
        topic_sims=sims,
    )
