"""Engine statistics across a restart: stats_to_bytes / restore_stats, and new-item marks."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest

from llmrec.covisit import CoVisitation, CoVisitConfig
from llmrec.engine import Engine, EngineConfig
from llmrec.events import Event, RecommendedItem, parse_event
from llmrec.exceptions import LlmrecError, SnapshotError
from llmrec.stats_snapshot import StatsPart, pack, unpack
from tests.unit.fakes_recsys import HashingEncoder, build_index

KINDS = ["view", "click", "purchase", "add_to_cart", "dislike", "rating", "review"]
TEXTS = ["loved it, wonderful", "awful and boring", "fine", "the best thing I bought"]


def _catalogue() -> dict[str, str]:
    topics = ["cooking recipe kitchen", "space galaxy future", "garden plants soil"]
    return {f"t{t}-{n}": f"{topics[t]} item {n}" for t in range(3) for n in range(15)}


def _engine() -> Engine:
    enc = HashingEncoder(32)
    titles = {i: i.upper() for i in _catalogue()}
    return Engine(EngineConfig(), build_index(enc, _catalogue()), enc, titles=titles)


def _events(n: int, seed: int, start: int = 0) -> list[Event]:
    rng = np.random.default_rng(seed)
    items = list(_catalogue())[:40]  # the last 5 are never engaged with
    out = []
    for k in range(start, start + n):
        kind = KINDS[int(rng.integers(len(KINDS)))]
        extra: dict[str, Any] = {}
        if kind in ("rating", "review"):
            extra["rating"] = int(rng.integers(1, 6))
        if kind == "review":
            extra["text"] = TEXTS[int(rng.integers(len(TEXTS)))]
        out.append(parse_event({
            "event_id": f"e{k}", "type": kind, "user_id": f"u{int(rng.integers(12))}",
            "item_id": items[int(rng.integers(len(items)))], "ts": 1e6 + 60 * k, **extra,
        }))  # fmt: skip
    return out


def _replay(engine: Engine, events: list[Event], states: dict[str, bytes]) -> None:
    engine.replay(events, states)


def _lists(engine: Engine, states: dict[str, bytes], now: float) -> list[list[RecommendedItem]]:
    requests = [(None, now, ()), *((states[u], now, ()) for u in sorted(states))]
    return engine.recommend_batch(requests, 10)


def _fed() -> tuple[Engine, dict[str, bytes]]:
    engine = _engine()
    for n, item in enumerate(reversed(_catalogue())):  # not in index order, on purpose
        engine.note_item(item, ts=1e6 - n)
    states: dict[str, bytes] = {}
    _replay(engine, _events(400, seed=1), states)
    return engine, states


def test_restored_engine_recommends_what_the_saved_one_did() -> None:
    engine, states = _fed()
    data = engine.stats_to_bytes()
    fresh = _engine()
    fresh.restore_stats(data)
    assert fresh.stats_to_bytes() == data  # every statistic came back, bit for bit
    now = 1e6 + 60 * 400
    assert _lists(fresh, states, now) == _lists(engine, states, now)
    assert any(lst for lst in _lists(fresh, states, now))
    # and it keeps learning exactly as the saved one would have
    more = _events(200, seed=2, start=400)
    restored = dict(states)
    _replay(engine, more, states)
    _replay(fresh, more, restored)
    assert restored == states
    assert fresh.stats_to_bytes() == engine.stats_to_bytes()


def test_cold_user_gets_a_list_from_new_items_alone() -> None:
    """A restart with no saved statistics: noting the snapshot's items is enough."""
    engine = _engine()
    assert engine.recommend(None, 5, now=2e6) == []
    for item in _catalogue():
        engine.note_item(item, ts=1e6)
    recs = engine.recommend(None, 5, now=2e6)
    assert len(recs) == 5
    assert all("new" in " ".join(r.reasons) for r in recs)


def test_noting_the_catalogue_after_restore_keeps_the_restored_new_items() -> None:
    engine, _ = _fed()
    fresh = _engine()
    fresh.restore_stats(engine.stats_to_bytes())
    for item in _catalogue():  # what the worker does with an index snapshot, in index order
        fresh.note_item(item, ts=5e6)
    assert fresh.stats_to_bytes() == engine.stats_to_bytes()  # same marks, same order
    cold = fresh.recommend(None, 10, now=2e6)
    assert len(cold) == 10
    assert cold == engine.recommend(None, 10, now=2e6)
    assert any("new" in " ".join(r.reasons) for r in cold)
    fresh.note_item("brand-new", ts=5e6)  # unknown to the saved statistics: marked new
    assert fresh.stats_to_bytes() != engine.stats_to_bytes()


def test_failed_restore_leaves_the_current_statistics() -> None:
    engine, _ = _fed()
    data = engine.stats_to_bytes()
    other = _engine()
    _replay(other, _events(50, seed=3), {})
    before = other.stats_to_bytes()
    with pytest.raises(SnapshotError):
        other.restore_stats(data[:-1])
    assert other.stats_to_bytes() == before


def _flip(data: bytes, at: int) -> bytes:
    raw = bytearray(data)
    raw[at] ^= 0x01
    return bytes(raw)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: b"", "too short"),
        (lambda d: d[:100], "checksum mismatch"),
        (lambda d: d[:-1], "checksum mismatch"),
        (lambda d: _flip(d, len(d) // 2), "checksum mismatch"),
        (lambda d: _flip(d, 20), "checksum mismatch"),
        (lambda d: b"XXXXXXXX" + d[8:], "not a statistics snapshot"),
        (lambda d: d[:8] + struct.pack("<H", 7) + d[10:], "unknown version 7"),
    ],
)
def test_damaged_bytes_raise_snapshot_error(damage: Any, message: str) -> None:
    engine, _ = _fed()
    with pytest.raises(SnapshotError, match=message):
        _engine().restore_stats(damage(engine.stats_to_bytes()))
    assert issubclass(SnapshotError, LlmrecError)


def _repacked(data: bytes, part: str, **arrays: np.ndarray) -> bytes:
    """`data` with arrays of one part replaced: well formed and checksummed, but inconsistent."""
    parts = unpack(data)
    parts[part].arrays.update(arrays)
    return pack(parts)


@pytest.mark.parametrize(
    ("part", "arrays", "message"),
    [
        ("covisit", {"nbr": np.full(3, 10_000, dtype=np.int32)}, "array 'count'"),
        ("covisit", {"src": np.array([0, 0], dtype=np.int32),
                     "length": np.array([0, 0], dtype=np.int32)}, "repeated"),
        ("covisit", {"length": np.array([1], dtype=np.int32)}, "array 'length'"),
        ("popularity", {"values": np.zeros(3, dtype=np.float32)}, "array 'values'"),
        ("items", {"count": np.zeros(1)}, "array 'count'"),
        ("items", {"text_sum": np.zeros((1, 7), dtype=np.float32)}, "array 'text_sum'"),
        ("new", {"ts": np.zeros(0)}, "array 'ts'"),
    ],
)  # fmt: skip
def test_inconsistent_parts_raise_snapshot_error(
    part: str, arrays: dict[str, np.ndarray], message: str
) -> None:
    engine, _ = _fed()
    with pytest.raises(SnapshotError, match=message):
        _engine().restore_stats(_repacked(engine.stats_to_bytes(), part, **arrays))


def test_out_of_range_neighbours_and_other_dimension_are_refused() -> None:
    engine, _ = _fed()
    data = engine.stats_to_bytes()
    nbr = unpack(data)["covisit"].arrays["nbr"].copy()
    nbr[0] = 10_000
    with pytest.raises(SnapshotError, match="neighbours out of range"):
        _engine().restore_stats(_repacked(data, "covisit", nbr=nbr))
    enc = HashingEncoder(16)
    with pytest.raises(SnapshotError, match="dimension"):
        Engine(EngineConfig(), build_index(enc, _catalogue()), enc).restore_stats(data)


def test_pack_round_trips_ids_arrays_and_scalars() -> None:
    part = StatsPart(
        ids=["a", "é-ü", "", "a-long-id" * 20],
        arrays={"x": np.arange(4, dtype=np.float64), "m": np.ones((2, 3), dtype=np.float32)},
        scalars={"ref": None, "total": 2.5},
    )
    other = StatsPart(ids=["a", "z"], arrays={"k": np.array([7, 8], dtype=np.int64)})
    back = unpack(pack({"p": part, "q": other}))
    assert back["p"].ids == part.ids
    assert back["q"].ids == ["a", "z"]
    assert back["p"].scalars == {"ref": None, "total": 2.5}
    np.testing.assert_array_equal(back["p"].arrays["m"], part.arrays["m"])
    np.testing.assert_array_equal(back["q"].arrays["k"], [7, 8])
    with pytest.raises(TypeError, match="dtype"):
        pack({"p": StatsPart(ids=[], arrays={"o": np.array([object()])})})


def test_covisitation_round_trip_keeps_pruned_lists_and_goes_on_identically() -> None:
    cfg = CoVisitConfig(max_neighbours=3, window=4, gap_decay=0.5)
    rng = np.random.default_rng(4)
    items = [f"i{n}" for n in range(25)]
    live, history = CoVisitation(cfg), []
    steps = [(items[int(rng.integers(25))], float(rng.choice([1.0, 2.0, 0.0]))) for _ in range(900)]
    for item, w in steps[:600]:  # integer weights: many ties when pruning
        live.add(item, history[-6:], w)
        history.append(item)
    back = CoVisitation.from_part(unpack(pack({"c": live.to_part()}))["c"], cfg)
    assert back.memory_items() == live.memory_items() <= 2 * 3 * len(live)
    recent = [(i, 1.0) for i in history[-5:]]
    assert back.top(recent, 10) == live.top(recent, 10)
    for item, w in steps[600:]:
        live.add(item, history[-6:], w)
        back.add(item, history[-6:], w)
        history.append(item)
    for a in items:
        assert back.neighbours(a) == live.neighbours(a)
        assert [back.count(a, b) for b in items] == [live.count(a, b) for b in items]
    assert back.top(recent, 10) == live.top(recent, 10)
