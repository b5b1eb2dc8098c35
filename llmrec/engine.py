"""The Engine: the one facade the workers call to fold events into state and to recommend.

`observe` folds an event into the user's compact state bytes and into the shared stream
statistics (co-visitation, decayed popularity). `recommend` retrieves candidates from the item
index (one query per interest topic plus the session vector), from co-visitation neighbours of
the user's recent items, from the popularity prior and from newly added items; fuses their
scores linearly (weights tuned on a validation split by `llmrec eval`); drops seen and
disliked items; diversifies with MMR; and explains each item.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np

from llmrec.covisit import CoVisitation, CoVisitConfig
from llmrec.events import Event, EventType, RecommendedItem
from llmrec.index import ItemIndex
from llmrec.interests import InterestConfig, UserState, id_hash
from llmrec.popularity import DecayedPopularity, PopularityConfig
from llmrec.rerank import RerankConfig, mmr
from llmrec.sentiment import SentimentScorer, rating_sentiment
from llmrec.types import TextEncoder

__all__ = ["DEFAULT_EVENT_WEIGHTS", "Engine", "EngineConfig", "RetrievalConfig"]

log = logging.getLogger(__name__)

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
class RetrievalConfig:
    """Candidate sources and the fusion weights of their scores."""

    per_topic_k: int = 100
    short_k: int = 50
    popular_k: int = 100
    new_k: int = 20
    w_content: float = 1.0
    w_short: float = 0.3
    w_covisit: float = 1.0
    w_popular: float = 0.3
    w_negative: float = 0.3
    w_new: float = 0.1
    recent_decay: float = 0.9
    text_weight: float = 0.5
    rating_neutral: float = 2.5
    negatives_engage: bool = True


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


@dataclass(slots=True)
class _Candidate:
    covisit: float = 0.0
    covisit_src: str = ""
    popular: float = 0.0
    new: bool = False


class Engine:
    """Incremental hybrid recommender over an `ItemIndex`; shared stats live in memory."""

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
        self._sentiment = SentimentScorer(encoder) if encoder is not None else None
        self._titles: dict[str, str] = dict(titles or {})
        self._id_of_hash: dict[int, str] = {}
        self._new: OrderedDict[str, float] = OrderedDict()

    # -- catalogue ---------------------------------------------------------------------------

    def note_item(self, item_id: str, title: str = "", ts: float = 0.0) -> None:
        """Record an upserted item's title (for reasons) and mark it new until engaged with."""
        if title:
            self._titles[item_id] = title
        self._id_of_hash[id_hash(item_id)] = item_id
        if self.popularity.share(item_id) == 0.0:
            self._new[item_id] = ts
            self._new.move_to_end(item_id)
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

    def observe(self, state: bytes | None, event: Event) -> bytes:
        """Fold one event into the user's state (returned) and into the shared statistics."""
        cfg, r = self.config, self.config.retrieval
        st = self._load(state)
        st.decay_to(event.ts, cfg.interest)
        text_vec = None
        sentiment = None
        if event.text and self.encoder is not None and self._sentiment is not None:
            text_vec = self.encoder.encode([event.text])[0]
            if event.rating is not None:
                sentiment = rating_sentiment(event.rating)
            else:
                sentiment = self._sentiment.score_vector(text_vec)
        weight = self.event_weight(event, sentiment)
        item_vec = self.index.vector(event.item_id)
        if item_vec is not None:
            st.fold(item_vec, weight, cfg.interest)
        if text_vec is not None and sentiment is not None:
            st.fold(text_vec, r.text_weight * sentiment, cfg.interest)
        engage = 1.0 if (weight > 0 or r.negatives_engage) else 0.0
        if event.type is not EventType.REVIEW or not st.has_seen(event.item_id):
            self.covisit.add(
                event.item_id, [i for i, w in st.recent if w > 0 or r.negatives_engage], engage
            )
            self.popularity.add(event.item_id, event.ts, engage)
        self._new.pop(event.item_id, None)
        self._id_of_hash[id_hash(event.item_id)] = event.item_id
        st.remember(event.item_id, weight, cfg.interest)
        return st.to_bytes()

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
        if k <= 0:
            return []
        st = self._load(state)
        r = self.config.retrieval
        banned = st.seen_hashes() | st.disliked_hashes()
        cands: dict[str, _Candidate] = {}

        def cand(item_id: str) -> _Candidate | None:
            if item_id in exclude or id_hash(item_id) in banned or item_id not in self.index:
                return None
            c = cands.get(item_id)
            if c is None:
                c = cands[item_id] = _Candidate()
            return c

        pop = self.popularity.top(r.popular_k, now)
        top_share = pop[0][1] if pop else 1.0
        for item_id, share in pop:
            if (c := cand(item_id)) is not None:
                c.popular = share / top_share
        for item_id in list(self._new)[-r.new_k :]:
            if (c := cand(item_id)) is not None:
                c.new = True
        n_recent = len(st.recent)
        recent = [
            (i, w * r.recent_decay ** (n_recent - 1 - pos)) for pos, (i, w) in enumerate(st.recent)
        ]
        for item_id, (score, src) in self.covisit.score(recent).items():
            if (c := cand(item_id)) is not None:
                c.covisit, c.covisit_src = score, src
        exclude_ids = set(exclude) | {i for i, _ in st.recent}
        for t in st.topics:
            for item_id, _ in self.index.search(t.centroid, r.per_topic_k, exclude_ids):
                cand(item_id)
        if st.short is not None and st.short_weight > 0:
            for item_id, _ in self.index.search(st.short, r.short_k, exclude_ids):
                cand(item_id)
        if not cands:
            return []
        return self._rank(st, cands, k)

    def _rank(self, st: UserState, cands: dict[str, _Candidate], k: int) -> list[RecommendedItem]:
        r = self.config.retrieval
        ids = list(cands)
        vecs = self.index.vectors(ids)
        content = np.zeros(len(ids))
        best_topic = np.full(len(ids), -1)
        if st.topics:
            shares = np.asarray(st.topic_shares())
            sims = vecs @ np.stack([t.centroid for t in st.topics]).T
            gated = sims * (0.5 + 0.5 * shares / max(shares.max(), 1e-9))
            best_topic = np.argmax(gated, axis=1)
            content = gated[np.arange(len(ids)), best_topic]
        short = vecs @ st.short if st.short is not None else np.zeros(len(ids))
        negative = vecs @ st.negative if st.negative is not None else np.zeros(len(ids))
        cov = np.asarray([cands[i].covisit for i in ids])
        cov = cov / cov.max() if cov.max() > 0 else cov
        popular = np.asarray([cands[i].popular for i in ids])
        new = np.asarray([cands[i].new for i in ids], dtype=np.float64)
        session = min(1.0, st.short_weight)
        score = (
            r.w_content * content
            + r.w_short * session * short
            + r.w_covisit * cov
            + r.w_popular * popular
            - r.w_negative * np.clip(negative, 0.0, None)
            + r.w_new * new
        )
        pool = np.argsort(-score, kind="stable")[: max(k, self.config.rerank.pool)]
        order = mmr(score[pool].tolist(), vecs[pool], k, self.config.rerank.mmr_lambda)
        out = []
        for j in (int(pool[o]) for o in order):
            item_id = ids[j]
            out.append(
                RecommendedItem(
                    item_id=item_id,
                    score=float(score[j]),
                    reasons=self._reasons(
                        st, cands[item_id], cov[j], content[j], int(best_topic[j])
                    ),
                )
            )
        return out

    def _reasons(
        self, st: UserState, c: _Candidate, cov: float, content: float, topic: int
    ) -> list[str]:
        reasons = []
        if c.covisit_src and cov >= 0.2:
            reasons.append(f"because you watched {self.title(c.covisit_src)}")
        if topic >= 0 and content >= 0.3:
            reasons.append(f"matches your interest in {self._topic_label(st, topic)}")
        if c.popular >= 0.3:
            reasons.append("popular now")
        if c.new:
            reasons.append("new")
        return reasons or ["popular now" if c.popular > 0 else "similar to your taste"]

    def _topic_label(self, st: UserState, topic: int) -> str:
        """Name a topic by the user's recent item closest to its centroid."""
        positives = [i for i, w in st.recent if w > 0 and i in self.index]
        if not positives:
            return "your earlier picks"
        sims = self.index.vectors(positives) @ st.topics[topic].centroid
        return f"titles like {self.title(positives[int(np.argmax(sims))])}"
