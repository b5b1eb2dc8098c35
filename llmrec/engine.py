"""The Engine: the one facade the workers call to fold events into state and to recommend.

`observe` folds an event into the user's compact state bytes and into the shared stream
statistics (co-visitation, decayed popularity). `recommend` retrieves candidates from the item
index (one query per interest topic plus the session vector), from co-visitation neighbours of
the user's recent items, from the popularity prior and from newly added items; drops seen and
disliked items; scores them with the learned ranker (`llmrec.ranker`, LightGBM LambdaMART) when
one is loaded, else with the linear fusion (weights tuned on validation by `llmrec eval`);
diversifies with MMR; and explains each item.

The shared statistics live in memory; `stats_to_bytes` / `restore_stats` carry them across a
restart (`llmrec.stats_snapshot`), so a new user does not meet an empty list after a deploy.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from llmrec.candidates import Candidates, RetrievalConfig, fuse
from llmrec.covisit import CoVisitation, CoVisitConfig
from llmrec.events import Event, EventType, RecommendedItem
from llmrec.explain import explain
from llmrec.gather import KeyLabels, Shared, StatRows, gather
from llmrec.index import ItemIndex
from llmrec.interests import InterestConfig, UserState, id_hash
from llmrec.itemstats import ItemStats
from llmrec.popularity import DecayedPopularity, PopularityConfig
from llmrec.ranker.features import feature_matrices
from llmrec.ranker.model import Ranker
from llmrec.rerank import RerankConfig, mmr_batch
from llmrec.sentiment import SentimentScorer, rating_sentiment
from llmrec.shared_stats import ItemStatsRecord, StatsUpdate
from llmrec.stats_snapshot import StatsPart, check, pack, unpack
from llmrec.types import TextEncoder, Vector

__all__ = [
    "DEFAULT_EVENT_WEIGHTS",
    "Candidates",
    "Engine",
    "EngineConfig",
    "RetrievalConfig",
    "fuse",
]

log = logging.getLogger(__name__)

Array = npt.NDArray[np.float64]

DEFAULT_EVENT_WEIGHTS: Mapping[str, float] = {
    EventType.VIEW: 0.5,
    EventType.CLICK: 1.0,
    EventType.ADD_TO_CART: 2.0,
    EventType.PURCHASE: 3.0,
    EventType.RATING: 1.5,
    EventType.REVIEW: 1.5,
    EventType.DISLIKE: -2.0,
}


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Everything the Engine is tuned by; the defaults are the values tuned on ml-100k."""

    interest: InterestConfig = field(default_factory=InterestConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    rerank: RerankConfig = field(default_factory=RerankConfig)
    covisit: CoVisitConfig = field(default_factory=CoVisitConfig)
    popularity: PopularityConfig = field(default_factory=PopularityConfig)
    event_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    max_new_items: int = 200


class Engine:
    """Incremental hybrid recommender over an `ItemIndex`; shared stats live in memory.

    One writer: `observe` and `note_item` must run on one thread (the agent's event loop);
    `recommend` only reads and tolerates items deleted from the index while it runs.
    """

    def __init__(
        self,
        config: EngineConfig,
        index: ItemIndex,
        encoder: TextEncoder | None = None,
        titles: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.index = index
        self.encoder = encoder
        self.covisit = CoVisitation(config.covisit)
        self.popularity = DecayedPopularity(config.popularity)
        self.items = ItemStats(index.dim)
        self.ranker: Ranker | None = None
        self._sentiment = SentimentScorer(encoder) if encoder is not None else None
        self._titles: dict[str, str] = dict(titles or {})
        self._id_of_hash: dict[int, str] = {}
        self._new: OrderedDict[str, float] = OrderedDict()
        # the last replicated out-list of each item (`apply_record`): ids and counts
        self._outs: dict[str, tuple[tuple[str, ...], Array]] = {}
        # (popularity version, top ids, their shares of the top one's)
        self._popular: tuple[int, list[str], npt.NDArray[np.float64]] | None = None
        self._key_labels = KeyLabels()
        self._stat_rows = StatRows()

    # -- catalogue ---------------------------------------------------------------------------

    def note_item(self, item_id: str, title: str = "", ts: float = 0.0) -> None:
        """Record an upserted item's title (for reasons); the first time the statistics hear of
        it, mark it new (most recent last) until engaged with.

        An item they already know keeps its mark, or its lack of one: noting every item of an
        index snapshot after `restore_stats` keeps the restored new items, in their order, and
        marks only the items the saved statistics never heard of.
        """
        if title:
            self._titles[item_id] = title
        self._id_of_hash[id_hash(item_id)] = item_id
        known = item_id in self.items
        self.items.note(item_id, ts)
        if not known and self.popularity.share(item_id) == 0.0:
            self._new[item_id] = ts
            while len(self._new) > self.config.max_new_items:
                self._new.popitem(last=False)

    def forget_item(self, item_id: str) -> None:
        """Drop a deleted item from the new-items list and the titles."""
        self._new.pop(item_id, None)
        self._titles.pop(item_id, None)

    def knows_item(self, item_id: str) -> bool:
        """Whether the item has a vector in the index (else the pipeline may park the event)."""
        return item_id in self.index

    def title(self, item_id: str) -> str:
        return self._titles.get(item_id, item_id)

    # -- statistics across restarts ----------------------------------------------------------

    def stats_to_bytes(self, extra: Mapping[str, StatsPart] | None = None) -> bytes:
        """The shared statistics (popularity, item stats, co-visitation, new-item marks, the
        replicated out-lists) and the caller's `extra` parts as compact checked bytes
        (`llmrec.stats_snapshot`); run on the writer thread."""
        new = StatsPart(
            list(self._new), {"ts": np.fromiter(self._new.values(), np.float64, len(self._new))}
        )
        parts = {
            "popularity": self.popularity.to_part(),
            "items": self.items.to_part(),
            "covisit": self.covisit.to_part(),
            "new": new,
            **self._outs_parts(),
            **(extra or {}),
        }
        return pack(parts)

    def _outs_parts(self) -> dict[str, StatsPart]:
        outs = self._outs
        length = np.fromiter((len(ids) for ids, _ in outs.values()), np.int32, len(outs))
        counts = [c for _, c in outs.values()]
        return {
            "outs": StatsPart(list(outs), {"length": length}),
            "outs_to": StatsPart(
                [i for ids, _ in outs.values() for i in ids],
                {"count": np.concatenate(counts) if counts else np.zeros(0)},
            ),
        }

    @staticmethod
    def _outs_from(parts: Mapping[str, StatsPart]) -> dict[str, tuple[tuple[str, ...], Array]]:
        if "outs" not in parts:  # a snapshot from before the replicated statistics
            return {}
        src, to = parts["outs"], parts["outs_to"]
        length = src.array("length", np.int32, (len(src.ids),))
        count = to.array("count", np.float64, (len(to.ids),))
        check(bool((length >= 0).all()) and int(length.sum()) == len(to.ids), "out-lists")
        check(bool(np.isfinite(count).all()), "out-list counts")
        out, lo = {}, 0
        for item_id, n in zip(src.ids, length.tolist(), strict=True):
            out[item_id] = (tuple(to.ids[lo : lo + n]), count[lo : lo + n].copy())
            lo += n
        return out

    def restore_stats(self, data: bytes) -> dict[str, StatsPart]:
        """Replace the shared statistics by those `stats_to_bytes` wrote: all or nothing, a
        SnapshotError on damaged bytes leaves the current ones. Run before observing, on the
        writer thread; then `note_item` each indexed item (new ones get marked new).
        Returns the parts that were not the engine's (the caller's `extra`)."""
        parts = unpack(data)
        missing = {"popularity", "items", "covisit", "new"} - set(parts)
        check(not missing, f"missing parts {sorted(missing)}")
        popularity = DecayedPopularity.from_part(parts["popularity"], self.config.popularity)
        items = ItemStats.from_part(parts["items"], self.index.dim)
        covisit = CoVisitation.from_part(parts["covisit"], self.config.covisit)
        marks = parts["new"]
        ts = marks.array("ts", np.float64, (len(marks.ids),)).tolist()
        new = OrderedDict(zip(marks.ids, ts, strict=True))
        while len(new) > self.config.max_new_items:
            new.popitem(last=False)
        outs = self._outs_from(parts)
        self.popularity, self.items, self.covisit, self._new = popularity, items, covisit, new
        self._popular = None
        self._outs = outs
        self._id_of_hash.update((id_hash(i), i) for i in parts["items"].ids)
        own = {"popularity", "items", "covisit", "new", "outs", "outs_to"}
        return {name: part for name, part in parts.items() if name not in own}

    # -- state -------------------------------------------------------------------------------

    def _load(self, state: bytes | None) -> UserState:
        return UserState.from_bytes(state) if state else UserState(self.index.dim)

    def event_weight(self, event: Event, text_sentiment: float | None = None) -> float:
        """Signed strength of an event: type weight, scaled by rating or review sentiment."""
        base = float(self.config.event_weights.get(event.type, 1.0))
        if event.type is EventType.DISLIKE:
            return -abs(base)
        r = self.config.retrieval
        if event.rating is not None:
            return base * (event.rating - r.rating_neutral) / (5.0 - r.rating_neutral)
        if event.type is EventType.REVIEW:
            return base * (text_sentiment if text_sentiment is not None else 0.0)
        return base

    def encode_texts(self, events: Sequence[Event]) -> list[Vector | None]:
        """Each event's encoded text (None without text or encoder), in one batched call."""
        out: list[Vector | None] = [None] * len(events)
        texted = [n for n, ev in enumerate(events) if ev.text]
        if self.encoder is None or not texted:
            return out
        vecs = self.encoder.encode([events[n].text or "" for n in texted])
        for n, v in zip(texted, vecs, strict=True):
            out[n] = v
        return out

    def observe(
        self, state: bytes | None, event: Event, *, shared: bool = True,
        text_vec: Vector | None = None,
    ) -> bytes:  # fmt: skip
        """Fold one event into the user's state (returned) and, if `shared`, the statistics.

        `shared=False` updates only the user (the evaluation folds a held-out user's validation
        event this way, so the shared statistics stay those every model was fitted on).
        `text_vec` is the event's text already encoded (by `encode_texts`, batched); without it
        the text is encoded here, alone.

        Exactly once per event: an event whose id the state remembers (Kafka redelivering after
        a crash) returns `state` itself, the same object, and touches no statistic. The state
        remembers its user's last `InterestConfig.max_event_ids` events; `is_duplicate` asks.
        """
        new, update = self.observe_update(state, event, text_vec=text_vec)
        if shared and update is not None:
            self.apply_update(update)
        return new

    def observe_update(
        self, state: bytes | None, event: Event, *, text_vec: Vector | None = None
    ) -> tuple[bytes, StatsUpdate | None]:
        """`observe` without the statistics: the user's new state and what the event changes in
        the shared statistics (None for a redelivered event, returned as `state` itself).

        The workers send the update to the item's owner (`llmrec.shared_stats`); `observe`
        applies it here.
        """
        if state and self.is_duplicate(state, event):
            return state, None
        cfg, r = self.config, self.config.retrieval
        st = self._load(state)
        st.decay_to(event.ts, cfg.interest)
        sentiment = None
        if event.text and self.encoder is not None and self._sentiment is not None:
            if text_vec is None:
                text_vec = self.encoder.encode([event.text])[0]
            sentiment = (
                rating_sentiment(event.rating)
                if event.rating is not None
                else self._sentiment.score_vector(text_vec)
            )
        else:
            text_vec = None
            if event.rating is not None:
                sentiment = rating_sentiment(event.rating)
        weight = self.event_weight(event, sentiment)
        item_vec = self.index.vector(event.item_id)
        if item_vec is not None:
            st.fold(item_vec, weight, cfg.interest)
        if text_vec is not None and sentiment is not None:
            st.fold(text_vec, r.text_weight * sentiment, cfg.interest)  # no-op at weight 0
            st.fold_review(text_vec, sentiment, cfg.interest)
        if sentiment is not None:
            st.note_sentiment(sentiment, cfg.interest)
        engage = 1.0 if (weight > 0 or r.negatives_engage) else 0.0
        first = event.type is not EventType.REVIEW or not st.has_seen(event.item_id)
        window = tuple(i for i, w in st.recent if w > 0 or r.negatives_engage) if first else ()
        update = StatsUpdate(
            event.item_id, event.ts, engage, first, window, sentiment,
            text_vec if text_vec is not None else None,
        )  # fmt: skip
        self._id_of_hash[id_hash(event.item_id)] = event.item_id
        st.remember(event.item_id, weight, cfg.interest)
        st.note_event(event.event_id, cfg.interest)
        return st.to_bytes(), update

    def apply_update(self, u: StatsUpdate) -> None:
        """Apply one event's update to the statistics held here (one process: the evaluation)."""
        if u.first:
            self.covisit.add(u.item_id, u.window, u.engage)
            self.popularity.add(u.item_id, u.ts, u.engage)
            self.items.engage(u.item_id, u.ts, u.sentiment)
        if u.review is not None:
            self.items.add_review(u.item_id, u.review)
        self._new.pop(u.item_id, None)

    def apply_record(self, item_id: str, record: ItemStatsRecord) -> None:
        """Replace `item_id`'s share of the statistics by its owner's `record` (a worker's
        replica of `item-stats`): the graph gains what the out-list gained since the last one."""
        old = self._outs.get(item_id)
        before = dict(zip(old[0], old[1].tolist(), strict=True)) if old is not None else {}
        increments = [
            (other, c - before.get(other, 0.0))
            for other, c in record.out.items()
            if c > before.get(other, 0.0)
        ]
        if record.mass > 0 or increments:
            self.covisit.merge(item_id, record.mass, increments)
        if record.pop_ref is not None:
            self.popularity.set(item_id, record.pop_value, record.pop_ref)
        if record.count > 0 or record.review_n > 0:
            self.items.set(
                item_id, count=record.count, first_ts=record.first_ts, sent_sum=record.sent_sum,
                sent_n=record.sent_n, review_sum=record.review_sum, review_n=record.review_n,
            )  # fmt: skip
        self._outs[item_id] = (
            tuple(record.out),
            np.fromiter(record.out.values(), np.float64, len(record.out)),
        )
        self._new.pop(item_id, None)
        self._id_of_hash[id_hash(item_id)] = item_id

    def is_duplicate(self, state: bytes | None, event: Event) -> bool:
        """Whether `observe(state, event)` would skip `event` as already applied (cheap: reads
        the state's header and event ids only)."""
        return state is not None and UserState.bytes_have_event(state, event.event_id)

    def replay(
        self, events: Sequence[Event], states: dict[str, bytes], *,
        before: Callable[[bytes | None, Event], None] | None = None,
        progress: Callable[[int], None] | None = None, chunk: int = 512,
    ) -> None:  # fmt: skip
        """Fold `events` (in the order given) into `states` and the statistics, texts encoded
        `chunk` events at a time; `before(state, event)` sees each state before its event."""
        for lo in range(0, len(events), chunk):
            part = events[lo : lo + chunk]
            for ev, vec in zip(part, self.encode_texts(part), strict=True):
                state = states.get(ev.user_id)
                if before is not None:
                    before(state, ev)
                states[ev.user_id] = self.observe(state, ev, text_vec=vec)
            if progress is not None:
                progress(len(part))

    def seen(self, state: bytes) -> set[str]:
        """Ids of the items the state remembers as seen (hashes mapped back to known ids)."""
        st = self._load(state)
        return {self._id_of_hash[h] for h in st.seen if h in self._id_of_hash}

    def state_size(self, state: bytes) -> int:
        return len(state)

    # -- recommend ---------------------------------------------------------------------------

    def recommend(
        self, state: bytes | None, k: int, now: float, exclude: Collection[str] = ()
    ) -> list[RecommendedItem]:
        """Top `k` items for the user in `state` at time `now`, with reasons; cold start if none."""
        return self.recommend_batch([(state, now, exclude)], k)[0]

    def recommend_batch(
        self, requests: Sequence[tuple[bytes | None, float, Collection[str]]], k: int
    ) -> list[list[RecommendedItem]]:
        """`recommend` for several users (state, now, exclude) at once: one ranker call."""
        if k <= 0:
            return [[] for _ in requests]
        gathered = self.gather(requests)
        return self.lists(gathered, self.score_batch(gathered), k)

    def gather(
        self, requests: Sequence[tuple[bytes | None, float, Collection[str]]]
    ) -> list[tuple[UserState, Candidates | None, float]]:
        """Each request's (state, candidates, now): the retrieval step of `recommend_batch`,
        for all users at once (`llmrec.gather`)."""
        states = [self._load(state) for state, _, _ in requests]
        found = gather(
            self.index, self.covisit, self._shared(), self.config.retrieval,
            [(st, excl) for st, (_, _, excl) in zip(states, requests, strict=True)],
            stat_rows=self._stat_rows(self.index, self.items), key_labels=self._key_labels,
        )  # fmt: skip
        return [(st, c, now) for st, c, (_, now, _) in zip(states, found, requests, strict=True)]

    def lists(
        self,
        gathered: Sequence[tuple[UserState, Candidates | None, float]],
        scores: Sequence[npt.NDArray[np.float64] | None],
        k: int,
    ) -> list[list[RecommendedItem]]:
        """Each user's final `k` (best by score, diversified by MMR), explained."""
        ranked = [
            (n, st, c, score)
            for n, ((st, c, _), score) in enumerate(zip(gathered, scores, strict=True))
            if c is not None and score is not None
        ]
        orders = self.orders([(c, score) for _, _, c, score in ranked], k)
        out: list[list[RecommendedItem]] = [[] for _ in gathered]
        for (n, st, c, score), order in zip(ranked, orders, strict=True):
            out[n] = explain(
                st, c, order, score, index=self.index, stats=self.items, title=self.title
            )
        return out

    def score_batch(
        self, gathered: Sequence[tuple[UserState, Candidates | None, float]]
    ) -> list[npt.NDArray[np.float64] | None]:
        """Each user's candidate scores: the ranker's (one call for all users) or the fusion's."""
        if self.ranker is None:
            r = self.config.retrieval
            return [fuse(c, r) if c is not None else None for _, c, _ in gathered]
        users = [(st, c, now) for st, c, now in gathered if c is not None]
        flat = self.ranker.score(feature_matrices(users, self.items)) if users else np.zeros(0)
        out: list[npt.NDArray[np.float64] | None] = []
        pos = 0
        for _, c, _ in gathered:
            if c is None:
                out.append(None)
                continue
            out.append(flat[pos : pos + len(c.ids)])
            pos += len(c.ids)
        return out

    def order(self, c: Candidates, score: npt.NDArray[np.float64], k: int) -> list[int]:
        """Indices into `c` of the final `k`: the best `pool` by score, then MMR."""
        return self.orders([(c, score)], k)[0]

    def orders(
        self, ranked: Sequence[tuple[Candidates, npt.NDArray[np.float64]]], k: int
    ) -> list[list[int]]:
        """`order` of several users' candidates, their MMR steps taken together."""
        pools = [np.argsort(-score, kind="stable")[: max(k, self.config.rerank.pool)]
                 for _, score in ranked]  # fmt: skip
        picked = mmr_batch(
            [(score[pool], c.vecs[pool]) for (c, score), pool in zip(ranked, pools, strict=True)],
            k,
            self.config.rerank.mmr_lambda,
        )
        return [pool[p].tolist() for pool, p in zip(pools, picked, strict=True)]

    def candidates(
        self, state: bytes | None, now: float, exclude: Collection[str] = ()
    ) -> tuple[UserState, Candidates | None]:
        """Gather one user's candidates from every source with their unweighted features."""
        st, c, _ = self.gather([(state, now, exclude)])[0]
        return st, c

    def _shared(self) -> Shared:
        """The popular and new items every user of a batch shares. Decayed popularity ranks
        alike at any time (one decay rate for all items), so its top is kept until it changes."""
        r = self.config.retrieval
        version = self.popularity.version
        if self._popular is None or self._popular[0] != version:
            ids, shares = self.popularity.top(r.popular_k, 0.0)
            self._popular = (version, ids, shares / (shares[0] if len(shares) else 1.0))
        _, ids, shares = self._popular
        return Shared(ids, shares, list(self._new)[-r.new_k :] if r.new_k > 0 else [])
