"""The statistics as a stream: updates keyed by item, records replicated into other engines."""

from __future__ import annotations

import numpy as np
import pytest

from llmrec.covisit import CoVisitConfig
from llmrec.engine import Engine, EngineConfig
from llmrec.events import Event
from llmrec.popularity import PopularityConfig
from llmrec.shared_stats import ItemStatsRecord, StatsUpdate
from tests.unit.test_stats_snapshot import _catalogue, _engine, _events, _lists

COV, POP = CoVisitConfig(), PopularityConfig()


def _through_records(
    events: list[Event], owners: int, *, order_seed: int | None = None
) -> tuple[Engine, dict[str, bytes]]:
    """Users' events observed by one engine, the updates folded by `owners` item owners, every
    touched record replicated into that engine (what a worker does, without Kafka)."""
    engine = _engine()
    records: list[dict[str, ItemStatsRecord]] = [{} for _ in range(owners)]
    states: dict[str, bytes] = {}
    pending: list[StatsUpdate] = []
    for ev in events:
        states[ev.user_id], update = engine.observe_update(states.get(ev.user_id), ev)
        assert update is not None
        pending.append(StatsUpdate.from_bytes(update.to_bytes()))  # as sent
    if order_seed is not None:  # updates of different items may arrive in any order
        rng = np.random.default_rng(order_seed)
        by_item: dict[str, list[StatsUpdate]] = {}
        for u in pending:
            by_item.setdefault(u.item_id, []).append(u)
        keys = list(by_item)
        rng.shuffle(keys)
        pending = [u for k in keys for u in by_item[k]]
    for u in pending:
        owner = records[hash(u.item_id) % owners]
        rec = owner.setdefault(u.item_id, ItemStatsRecord())
        rec.apply(u, COV, POP)
        engine.apply_record(u.item_id, ItemStatsRecord.from_bytes(rec.to_bytes()))
    return engine, states


def test_records_give_the_engine_the_statistics_it_would_count_itself() -> None:
    events = _events(400, seed=3)
    direct = _engine()
    states: dict[str, bytes] = {}
    for ev in events:
        states[ev.user_id] = direct.observe(states.get(ev.user_id), ev)
    replicated, rstates = _through_records(events, owners=3)
    assert rstates == states
    items = list(_catalogue())
    for a in items:
        for b in items:
            assert replicated.covisit.count(a, b) == pytest.approx(direct.covisit.count(a, b))
        assert replicated.popularity.share(a) == pytest.approx(direct.popularity.share(a))
    rows_d, rows_r = direct.items.rows(items), replicated.items.rows(items)
    np.testing.assert_allclose(replicated.items.counts(rows_r), direct.items.counts(rows_d))
    np.testing.assert_allclose(
        replicated.items.sentiment(rows_r), direct.items.sentiment(rows_d), equal_nan=True
    )
    np.testing.assert_allclose(
        replicated.items.crowd_vectors(rows_r)[0], direct.items.crowd_vectors(rows_d)[0],
        atol=1e-6,
    )  # fmt: skip
    now = events[-1].ts
    got = [[i.item_id for i in lst] for lst in _lists(replicated, rstates, now)]
    want = [[i.item_id for i in lst] for lst in _lists(direct, states, now)]
    assert got == want


def test_the_order_updates_of_different_items_arrive_in_does_not_change_the_counts() -> None:
    events = _events(300, seed=5)
    one, _ = _through_records(events, owners=1)
    other, _ = _through_records(events, owners=4, order_seed=11)
    items = list(_catalogue())
    for a in items:
        for b in items:
            assert other.covisit.count(a, b) == pytest.approx(one.covisit.count(a, b))


def test_a_redelivered_event_makes_no_update() -> None:
    engine = _engine()
    ev = _events(1, seed=1)[0]
    state, update = engine.observe_update(None, ev)
    assert update is not None
    assert update.item_id == ev.item_id
    again, none = engine.observe_update(state, ev)
    assert none is None
    assert again is state


def test_an_out_list_stays_bounded_and_keeps_its_strongest() -> None:
    cov = CoVisitConfig(max_neighbours=5)
    rec = ItemStatsRecord()
    for n in range(30):
        rec.apply(StatsUpdate("x", 1e6 + n, 1.0, True, (f"n{n}",) * 1), cov, POP)
        rec.apply(StatsUpdate("x", 1e6 + n, 1.0, True, ("strong",)), cov, POP)
    assert len(rec.out) <= 2 * cov.max_neighbours
    assert rec.out["strong"] == pytest.approx(30.0)
    assert rec.mass == pytest.approx(60.0)
    assert rec.count == 60


def test_a_replayed_record_adds_only_what_its_out_list_gained() -> None:
    engine = _engine()
    a, b = list(_catalogue())[:2]
    rec = ItemStatsRecord()
    rec.apply(StatsUpdate(a, 1e6, 1.0, True, (b,)), COV, POP)
    engine.apply_record(a, ItemStatsRecord.from_bytes(rec.to_bytes()))
    engine.apply_record(a, ItemStatsRecord.from_bytes(rec.to_bytes()))  # the same record again
    assert engine.covisit.count(a, b) == pytest.approx(1.0)
    assert engine.covisit.count(b, a) == pytest.approx(1.0)


def test_popularity_from_records_decays_like_the_engines_own() -> None:
    direct, replica = _engine(), _engine()
    records = {"t0-1": ItemStatsRecord(), "t1-1": ItemStatsRecord()}
    day = 86_400.0
    for n, ts in enumerate([0.0, 5 * day, 400 * day, 401 * day, 2000 * day]):  # rescales
        for item, weight in (("t0-1", 1.0 + n), ("t1-1", 1.0)):
            u = StatsUpdate(item, 1e9 + ts, weight, True)
            direct.apply_update(u)
            records[item].apply(u, COV, POP)
            replica.apply_record(item, records[item])
        for item in records:
            assert replica.popularity.share(item) == pytest.approx(direct.popularity.share(item))


@pytest.mark.parametrize("cut", [0, 3, 10, -1])
def test_damaged_bytes_are_refused(cut: int) -> None:
    rec = ItemStatsRecord()
    rec.apply(StatsUpdate("x", 1e6, 1.0, True, ("y", "z"), 0.5, np.ones(4, np.float32)), COV, POP)
    for raw in (rec.to_bytes(), StatsUpdate("x", 1e6, 1.0, True, ("y",)).to_bytes()):
        with pytest.raises(ValueError):
            (ItemStatsRecord if raw.startswith(b"LIR") else StatsUpdate).from_bytes(raw[:cut])


def test_records_round_trip() -> None:
    rec = ItemStatsRecord()
    rec.apply(StatsUpdate("x", 1e6, 2.0, True, ("y", "é"), -0.5, np.ones(4, np.float32)), COV, POP)
    back = ItemStatsRecord.from_bytes(rec.to_bytes())
    assert back.out == rec.out
    assert back.mass == rec.mass
    assert back.sent_n == 1
    assert back.review_sum is not None
    assert back.review_n == 1
    u = StatsUpdate("x", 1e6, 2.0, False, ("a",), None, None)
    assert StatsUpdate.from_bytes(u.to_bytes()) == u


def test_engine_statistics_snapshot_keeps_the_replicated_out_lists() -> None:
    events = _events(200, seed=9)
    engine, _states = _through_records(events, owners=2)
    restored = Engine(EngineConfig(), engine.index, engine.encoder)
    restored.restore_stats(engine.stats_to_bytes())
    assert restored._outs.keys() == engine._outs.keys()
    # a record replayed after the restore adds nothing: the out-lists came back
    item = next(iter(engine._outs))
    ids, counts = engine._outs[item]
    rec = ItemStatsRecord(mass=1.0, out=dict(zip(ids, counts.tolist(), strict=True)))
    before = {b: restored.covisit.count(item, b) for b in ids}
    restored.apply_record(item, rec)
    assert {b: restored.covisit.count(item, b) for b in ids} == before
