"""The Engine facade: observe/recommend round trips, exclusions, cold start, reasons, covisit."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from llmrec.candidates import RetrievalConfig
from llmrec.covisit import CoVisitation, CoVisitConfig
from llmrec.engine import Engine, EngineConfig
from llmrec.events import Event, parse_event
from llmrec.index import Labels
from llmrec.interests import InterestConfig
from llmrec.popularity import DecayedPopularity, PopularityConfig
from llmrec.rerank import RerankConfig
from llmrec.sentiment import SentimentScorer, rating_sentiment
from tests.unit.fakes_recsys import HashingEncoder, build_index

COOKING = ["pasta", "risotto", "curry", "bread", "soup", "pie", "salad", "stew"]
SCIFI = ["alien", "robot", "starship", "planet", "android", "warp", "nebula", "cyborg"]
WORDS = {
    "c": "cooking recipe kitchen chef food dish",
    "s": "science fiction space future galaxy adventure",
}


def _items() -> dict[str, str]:
    items = {f"c-{w}": f"{WORDS['c']} {w}" for w in COOKING}
    items.update({f"s-{w}": f"{WORDS['s']} {w}" for w in SCIFI})
    return items


@pytest.fixture
def engine() -> Engine:
    enc = HashingEncoder(64)
    return Engine(EngineConfig(), build_index(enc, _items()), enc, titles={"c-pasta": "Pasta!"})


def _ev(n: int, item: str, kind: str = "purchase", **kw: Any) -> Event:
    return parse_event(
        {"event_id": f"e{n}", "type": kind, "user_id": "u1", "item_id": item, "ts": 1e6 + n, **kw}
    )


def _feed(engine: Engine, events: list[Event], state: bytes | None = None) -> bytes:
    for ev in events:
        state = engine.observe(state, ev)
    assert state is not None
    return state


def test_cold_start_gives_popular_and_new_items(engine: Engine) -> None:
    other = _feed(engine, [_ev(i, "s-alien") for i in range(3)] + [_ev(9, "c-soup")])
    assert engine.seen(other) == {"s-alien", "c-soup"}
    engine.note_item("c-pie", "Pie", ts=2e6)
    recs = engine.recommend(None, 3, now=2e6)
    assert recs[0].item_id == "s-alien"
    assert "popular now" in recs[0].reasons
    assert any(r.item_id == "c-pie" and "new" in r.reasons for r in recs)


def test_two_topic_user_gets_both_and_never_seen_items(engine: Engine) -> None:
    events = [_ev(0, "c-pasta"), _ev(1, "s-alien"), _ev(2, "c-curry"), _ev(3, "s-robot")]
    state = _feed(engine, events)
    recs = engine.recommend(state, 12, now=1e6 + 10)
    ids = [r.item_id for r in recs]
    assert len(ids) == 12
    assert not set(ids) & {"c-pasta", "s-alien", "c-curry", "s-robot"}
    assert sum(i.startswith("s-") for i in ids) == 6  # every unseen sci-fi item is reached
    assert all(r.reasons for r in recs)
    assert any("matches your interest in titles like Pasta!" in x for r in recs for x in r.reasons)
    # with strong diversification both tastes show in the first four
    engine.config = replace(engine.config, rerank=RerankConfig(mmr_lambda=0.3))
    first = [r.item_id[0] for r in engine.recommend(state, 4, now=1e6 + 10)]
    assert set(first) == {"c", "s"}


def test_disliked_topic_falls_behind(engine: Engine) -> None:
    state = _feed(engine, [_ev(0, "c-pasta"), _ev(1, "s-alien", "view")])
    before = [r.item_id for r in engine.recommend(state, 16, now=1e6 + 5)]
    state = _feed(engine, [_ev(2, "s-robot", "dislike"), _ev(3, "s-warp", "dislike")], state)
    after = [r.item_id for r in engine.recommend(state, 16, now=1e6 + 5)]
    assert "s-robot" not in after
    assert "s-warp" not in after
    first_scifi = min(after.index(i) for i in after if i.startswith("s-"))
    assert first_scifi >= sum(1 for i in before if i.startswith("c-") and i != "c-pasta") - 1


def test_unknown_item_is_recorded_as_seen_without_vector(engine: Engine) -> None:
    assert not engine.knows_item("ghost")
    state = _feed(engine, [_ev(0, "ghost")])
    assert engine.seen(state) == {"ghost"}
    assert engine.state_size(state) == len(state)


def test_item_deleted_during_recommend_is_dropped(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _feed(engine, [_ev(0, "c-pasta")])
    real = engine.index.resolve
    calls = []

    def racy(labels: Labels) -> object:
        calls.append(len(labels))
        # the item vanishes between candidate search and vector fetch
        assert engine.index.labels(["c-soup"])[0] in labels
        engine.index.delete("c-soup")
        return real(labels)

    monkeypatch.setattr(engine.index, "resolve", racy)
    recs = engine.recommend(state, 20, now=1e6 + 5)
    assert recs
    assert "c-soup" not in {r.item_id for r in recs}
    assert len(calls) == 1  # one consistent read: the deleted item's label is dropped there


def test_covisitation_drives_because_you_watched(engine: Engine) -> None:
    for u in range(5):  # other users watch pasta then alien
        st = engine.observe(None, _ev(10 * u, "c-pasta").model_copy(update={"user_id": f"o{u}"}))
        engine.observe(st, _ev(10 * u + 1, "s-nebula").model_copy(update={"user_id": f"o{u}"}))
    state = _feed(engine, [_ev(100, "c-pasta")])
    recs = engine.recommend(state, 3, now=1e6 + 200)
    top = next(r for r in recs if r.item_id == "s-nebula")
    assert "because you watched Pasta!" in top.reasons


def test_covisited_items_follow_the_index_as_it_changes(engine: Engine) -> None:
    """Co-visited candidates reach the index through a cached key -> label map: an item the
    index drops leaves the candidates, and comes back under its new label when re-added."""
    for u in range(5):
        st = engine.observe(None, _ev(10 * u, "c-pasta").model_copy(update={"user_id": f"o{u}"}))
        engine.observe(st, _ev(10 * u + 1, "s-nebula").model_copy(update={"user_id": f"o{u}"}))
    state = _feed(engine, [_ev(100, "c-pasta")])

    def covisited() -> dict[str, str]:
        _, c = engine.candidates(state, 1e6 + 200)
        assert c is not None
        return {i: c.sources[n] for n, i in enumerate(c.ids) if c.covisit[n] > 0}

    assert covisited() == {"s-nebula": "c-pasta"}
    vec = engine.index.vectors(["s-nebula"])
    engine.index.delete("s-nebula")
    assert covisited() == {}
    engine.index.upsert(["s-fresh"], vec)  # takes the deleted item's slot
    engine.index.upsert(["s-nebula"], vec)
    assert covisited() == {"s-nebula": "c-pasta"}
    _, c = engine.candidates(state, 1e6 + 200)
    assert c is not None
    assert "s-fresh" in c.ids
    assert c.covisit[c.ids.index("s-fresh")] == 0


def test_review_sentiment_from_text_and_rating() -> None:
    enc = HashingEncoder(64)
    scorer = SentimentScorer(enc)
    assert scorer.score("I loved it, absolutely wonderful") > 0.5
    assert scorer.score("awful boring waste of time") < -0.5
    assert rating_sentiment(5) == 1.0
    assert rating_sentiment(1) == -1.0


def test_negative_review_counts_against(engine: Engine) -> None:
    ev = _ev(0, "s-planet", "review", text="I hated it, absolutely terrible")
    assert engine.event_weight(ev, -0.9) < 0
    state = _feed(engine, [ev])
    assert "s-planet" in engine.seen(state)


def test_covisit_counts_and_pruning() -> None:
    cv = CoVisitation(CoVisitConfig(max_neighbours=2, window=3, gap_decay=0.5))
    cv.add("b", ["a"])
    cv.add("c", ["a", "b"])
    assert cv.count("a", "b") == 1.0
    assert cv.count("c", "b") == 1.0  # distance 0
    assert cv.count("c", "a") == 0.5  # distance 1, halved
    assert cv.count("b", "c") == cv.count("c", "b")
    for n in range(10):
        cv.add(f"x{n}", ["hub"])
    assert len(cv.neighbours("hub")) <= 4  # pruned back to max_neighbours when past twice it
    assert cv.memory_items() <= 2 * 2 * len(cv)


def test_popularity_decays_old_engagement() -> None:
    pop = DecayedPopularity(PopularityConfig(half_life_s=10.0))
    for _ in range(4):
        pop.add("old", 0.0)
    pop.add("fresh", 25.0)  # 4 * 2**-2.5 ~ 0.71 < 1
    assert pop.top(2, now=25.0)[0] == ["fresh", "old"]
    pop.add("far", 1e6)  # rescaling the reference keeps numbers finite
    assert pop.top(1, now=1e6)[0] == ["far"]


def test_event_weights_follow_intent_and_ratings(engine: Engine) -> None:
    w = {k: engine.event_weight(_ev(0, "c-pie", k)) for k in ("view", "click", "add_to_cart")}
    w["purchase"] = engine.event_weight(_ev(0, "c-pie"))
    assert w["view"] < w["click"] < w["add_to_cart"] < w["purchase"]
    rated = [engine.event_weight(_ev(0, "c-pie", "rating", rating=r)) for r in (1, 2, 3, 4, 5)]
    assert rated == sorted(rated)
    assert rated[0] < 0 < rated[2]
    assert engine.event_weight(_ev(0, "c-pie", "dislike")) < 0


def test_covisit_top_equals_sorted_score_as_the_graph_changes() -> None:
    rng = np.random.default_rng(7)
    cv = CoVisitation(CoVisitConfig(max_neighbours=5, window=4))
    items = [f"i{n}" for n in range(40)]
    history: list[str] = []
    compared = 0
    for step in range(400):
        item = items[int(rng.integers(len(items)))]
        cv.add(item, history[-4:], weight=float(rng.uniform(0.5, 2.0)))
        history.append(item)
        if step % 25 == 0:  # the cached neighbour arrays must follow every update
            recent = [
                (i, float(w)) for i, w in zip(history[-6:], rng.uniform(-1, 2, 6), strict=False)
            ]
            by_score = sorted(cv.score(recent).items(), key=lambda kv: -kv[1][0])[:8]
            assert cv.top(recent, 8) == [(i, s, src) for i, (s, src) in by_score]
            compared += len(by_score)
    assert compared > 50  # the comparison saw real neighbour lists, not empty ones


def test_covisit_top_breaks_ties_by_first_appearance_at_the_cut() -> None:
    # unit weights, one neighbour a visit, equal source weights: most scores tie, and `k`
    # cuts through the ties, which must go to the items first met, as `sorted` keeps them
    rng = np.random.default_rng(3)
    cv = CoVisitation(CoVisitConfig(max_neighbours=50, window=1, normalise_alpha=0.0))
    items = [f"i{n}" for n in range(30)]
    history = [items[int(i)] for i in rng.integers(len(items), size=300)]
    for n, item in enumerate(history):
        cv.add(item, history[max(0, n - 1) : n])
    for k in (1, 3, 7, 12):
        for sources in (1, 4):
            recent = [(i, 1.0) for i in items[:sources]]
            by_score = sorted(cv.score(recent).items(), key=lambda kv: -kv[1][0])[:k]
            assert cv.top(recent, k) == [(i, s, src) for i, (s, src) in by_score]
    scores = [s for _, (s, _) in cv.score([(i, 1.0) for i in items[:4]]).items()]
    assert len(set(scores)) < len(scores)  # the comparison saw ties


# -- exactly once: redelivered events ---------------------------------------------------------


def test_redelivered_event_changes_nothing(engine: Engine) -> None:
    state = _feed(engine, [_ev(0, "c-pasta"), _ev(1, "s-alien")])
    stats = engine.stats_to_bytes()
    again = _ev(1, "s-alien")
    assert engine.is_duplicate(state, again)
    assert not engine.is_duplicate(state, _ev(2, "s-alien"))
    assert not engine.is_duplicate(None, again)
    assert engine.observe(state, again) is state
    assert engine.observe(state, _ev(0, "c-pasta", "dislike")) is state  # same id, any payload
    assert engine.stats_to_bytes() == stats  # no shared statistic moved
    assert engine.observe(state, _ev(2, "s-alien")) is not state


def test_redelivered_tail_leaves_the_state_and_stats_of_one_delivery() -> None:
    """After a crash Kafka redelivers the uncommitted events to a state that already holds them
    (the table was written): each must count once, in the user state and the statistics."""
    enc = HashingEncoder(64)
    events = [_ev(n, item, kind) for n, (item, kind) in enumerate([
        ("c-pasta", "purchase"), ("s-alien", "view"), ("c-curry", "click"),
        ("s-robot", "dislike"), ("c-soup", "purchase"), ("s-warp", "view"),
    ])]  # fmt: skip
    once = Engine(EngineConfig(), build_index(enc, _items()), enc)
    expected = _feed(once, events)
    crashed = Engine(EngineConfig(), build_index(enc, _items()), enc)
    state = _feed(crashed, events)
    for ev in events[2:]:  # redelivered, in order
        assert crashed.is_duplicate(state, ev)
        assert crashed.observe(state, ev) is state
    assert state == expected
    assert crashed.stats_to_bytes() == once.stats_to_bytes()
    later = _ev(9, "c-pie")
    assert crashed.observe(state, later) == once.observe(expected, later)


def test_duplicate_older_than_the_event_memory_is_applied_again() -> None:
    enc = HashingEncoder(64)
    cfg = EngineConfig(interest=InterestConfig(max_event_ids=2))
    engine = Engine(cfg, build_index(enc, _items()), enc)
    state = _feed(engine, [_ev(n, "c-pasta") for n in range(3)])
    assert engine.observe(state, _ev(1, "c-pasta")) is state
    assert engine.observe(state, _ev(0, "c-pasta")) is not state  # beyond the last 2 events


def test_held_out_fold_is_deduplicated_too(engine: Engine) -> None:
    state = engine.observe(None, _ev(0, "c-pasta"), shared=False)
    assert engine.observe(state, _ev(0, "c-pasta"), shared=False) is state


def test_a_batch_of_users_gets_the_lists_each_would_get_alone(engine: Engine) -> None:
    states = [
        _feed(engine, [_ev(0, "c-pasta"), _ev(1, "c-soup", "view")]),
        _feed(engine, [_ev(2, "s-robot"), _ev(3, "s-warp", "dislike")]),
        _feed(engine, [_ev(4, "s-alien"), _ev(5, "c-pie")]),
    ]
    requests = [(s, 1e6 + 10, ()) for s in states] + [(None, 1e6 + 10, ("c-pasta",))]
    together = engine.recommend_batch(requests, 6)
    alone = [engine.recommend_batch([r], 6)[0] for r in requests]
    assert together == alone
    assert all(together)
    assert "c-pasta" not in {r.item_id for r in together[-1]}


@pytest.mark.parametrize("seed", range(5))
def test_candidate_filters_agree_with_numpy_set_operations(seed: int) -> None:
    from llmrec.arrays import first_seen
    from llmrec.gather import _without

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 50, size=int(rng.integers(0, 200)))
    _, first = np.unique(labels, return_index=True)
    assert first_seen(labels, 50).tolist() == labels[np.sort(first)].tolist()
    values = rng.integers(-5, 2**32, size=300)
    banned = np.concatenate([rng.choice(values, 40), rng.integers(0, 2**32, 1000)])
    for ban in (banned, banned[:0], np.array([values.max() + 1]), np.array([values.min() - 1])):
        assert _without(values, ban).tolist() == (~np.isin(values, ban)).tolist()


def test_stat_rows_follow_the_index_and_the_statistics(engine: Engine) -> None:
    from llmrec.gather import StatRows
    from llmrec.itemstats import ItemStats

    cache, index = StatRows(), engine.index

    def expected(stats: ItemStats) -> list[int]:
        return stats.rows(index.label_ids()).tolist()

    stats = ItemStats(index.dim)
    stats.note("s-robot", 1.0)
    assert cache(index, stats).tolist() == expected(stats)
    assert sum(r >= 0 for r in cache(index, stats).tolist()) == 1
    stats.note("c-soup", 2.0)  # the statistics gain an item the index already held
    assert cache(index, stats).tolist() == expected(stats)
    old_label = int(index.labels(["s-robot"])[0])
    index.delete("s-robot")  # its label is dead (never a candidate again) and keeps its id
    stats.note("new-item", 3.0)
    index.upsert(["new-item", "s-robot"], index.vectors(["c-pie", "c-stew"]))  # new labels
    rows = cache(index, stats).tolist()
    assert rows == expected(stats)
    assert rows[int(index.labels(["new-item"])[0])] == stats.rows(["new-item"])[0]
    assert int(index.labels(["s-robot"])[0]) != old_label
    assert rows[int(index.labels(["s-robot"])[0])] == stats.rows(["s-robot"])[0]
    other = ItemStats(index.dim)  # replaced statistics (a restore)
    assert cache(index, other).tolist() == [-1] * len(rows)


def test_key_labels_follow_the_index_and_the_graph(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmrec.gather import KeyLabels
    from llmrec.index import ItemIndex

    cache, index, graph = KeyLabels(), engine.index, CoVisitation(CoVisitConfig())
    looked_up: list[int] = []
    real = ItemIndex.labels

    def counting(self: ItemIndex, ids: Any) -> Labels:
        looked_up.append(len(ids))
        return real(self, ids)

    monkeypatch.setattr(ItemIndex, "labels", counting)

    def check() -> list[int]:
        looked_up.clear()
        assert cache(index, graph).tolist() == real(index, graph.names).tolist()
        return list(looked_up)

    graph.add("c-pie", ["s-robot", "not-yet"])  # one id the index does not hold
    check()
    index.upsert(["c-pie"], index.vectors(["c-stew"]))  # replaced: no label moves
    assert check() == []
    index.upsert(["not-yet"], index.vectors(["c-soup"]))  # a new label: only the missing key
    assert check() == [1]
    graph.add("c-soup", ["later"])  # the graph interns two more ids: only they are looked up
    assert check() == [2]
    index.delete("s-robot")  # a label lost: all again
    assert check() == [len(graph.names)]
    assert cache(index, CoVisitation(CoVisitConfig())).tolist() == []  # a replaced graph


def test_candidate_budgets_scale_together_and_never_to_zero() -> None:
    r = RetrievalConfig()
    assert r.scaled(1.0) == r
    half = r.scaled(0.5)
    assert (half.per_topic_k, half.short_k, half.covisit_k, half.popular_k) == (
        r.per_topic_k // 2, r.short_k // 2, r.covisit_k // 2, r.popular_k // 2,
    )  # fmt: skip
    assert replace(half, per_topic_k=r.per_topic_k, short_k=r.short_k, covisit_k=r.covisit_k,
                   popular_k=r.popular_k) == r  # fmt: skip  # only the budgets change
    assert min(r.scaled(1e-6).per_topic_k, r.scaled(1e-6).covisit_k) == 1
    with pytest.raises(ValueError, match="positive"):
        r.scaled(0.0)
