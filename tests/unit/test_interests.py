"""The user-interest model: dislikes, decay, multiple topics, bounded state, bytes round trip."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from llmrec.exceptions import LlmrecError
from llmrec.interests import InterestConfig, UserState, event_hash

DIM = 32


def _axis(i: int, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i] = 1.0
    if noise:
        v += noise * np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def _best_topic_sim(st: UserState, v: np.ndarray) -> float:
    return max(float(t.centroid @ v) for t in st.topics)


def test_dislike_moves_the_user_away() -> None:
    cfg = InterestConfig()
    st = UserState(DIM)
    liked = _axis(0)
    close = _unit(liked + 0.8 * _axis(1))
    st.fold(liked, 1.0, cfg)
    st.fold(_axis(1), 0.2, cfg)
    before = _best_topic_sim(st, close)
    st.fold(close, -2.0, cfg)
    assert _best_topic_sim(st, close) < before - 0.05
    assert st.negative is not None
    assert float(st.negative @ close) > 0.99


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def test_decay_forgets_long_and_short_term() -> None:
    cfg = InterestConfig(long_half_life_s=100.0, short_half_life_s=10.0)
    st = UserState(DIM)
    st.decay_to(1_000.0, cfg)
    st.fold(_axis(0), 1.0, cfg)
    st.decay_to(1_100.0, cfg)
    assert st.topics[0].weight == pytest.approx(0.5)
    assert st.short_weight == pytest.approx(2**-10)
    # a fresh interest now outweighs the old one
    st.fold(_axis(5), 1.0, cfg)
    assert st.topic_shares()[1] > st.topic_shares()[0]
    assert st.short is not None
    assert float(st.short @ _axis(5)) > 0.99


def test_two_topic_user_keeps_both_topics() -> None:
    cfg = InterestConfig(max_topics=4)
    st = UserState(DIM)
    for n in range(30):
        st.decay_to(float(n), cfg)
        st.fold(_axis(0, 0.08, n) if n % 3 else _axis(7, 0.08, n), 1.0, cfg)
    assert 2 <= len(st.topics) <= cfg.max_topics
    assert _best_topic_sim(st, _axis(0)) > 0.9
    assert _best_topic_sim(st, _axis(7)) > 0.9


def test_topics_stay_bounded_with_many_tastes() -> None:
    cfg = InterestConfig(max_topics=3)
    st = UserState(DIM)
    for n in range(20):
        st.fold(_axis(n % DIM), 1.0 + n, cfg)
    assert len(st.topics) == 3
    assert _best_topic_sim(st, _axis(19)) > 0.99  # the strongest recent taste survives


def test_state_is_bounded_and_round_trips_through_bytes() -> None:
    cfg = InterestConfig(max_recent=20, max_seen=100, max_disliked=10)
    st = UserState(DIM)
    rng = np.random.default_rng(1)
    for n in range(500):
        st.decay_to(float(n), cfg)
        w = -1.0 if n % 7 == 0 else 1.0
        st.fold(_unit(rng.standard_normal(DIM).astype(np.float32)), w, cfg)
        st.remember(f"item-{n}", w, cfg)
    raw = st.to_bytes()
    assert len(st.recent) == 20
    assert len(st.seen) == 100
    assert len(st.disliked) == 10
    assert st.has_seen("item-499")
    assert not st.has_seen("item-0")
    back = UserState.from_bytes(raw)
    assert back.to_bytes() == raw
    assert back.recent == [(i, pytest.approx(w)) for i, w in st.recent]
    for a, b in zip(back.topics, st.topics, strict=True):
        assert np.allclose(a.centroid, b.centroid, atol=1e-3)
    # header 41 + flags 1 + topics (4 + 2 * dim) + short + negative + recent + 4-byte hashes
    ids = sum(5 + len(i) for i, _ in st.recent)
    assert len(raw) == 42 + len(st.topics) * (4 + 2 * DIM) + 2 * 2 * DIM + ids + 4 * 110
    for n in range(100):
        st.note_event(f"event-{n}", cfg)
    assert len(st.events) == 64
    assert not st.has_event("event-35")
    assert st.has_event("event-36")
    assert st.has_event("event-99")
    # plus 8 bytes per remembered event id
    assert len(st.to_bytes()) == len(raw) + 8 * 64
    back = UserState.from_bytes(st.to_bytes())
    assert back.events == st.events
    assert back.to_bytes() == st.to_bytes()


def test_bytes_per_user_at_production_dimension() -> None:
    """The documented bound: 384-dim float16 state with full lists is about 10 KB."""
    cfg = InterestConfig()
    st = UserState(384)
    rng = np.random.default_rng(2)
    for n in range(2_000):
        w = -1.0 if n % 10 == 0 else 1.0
        st.fold(_unit(rng.standard_normal(384).astype(np.float32)), w, cfg)
        st.remember(str(n), w, cfg)
    size = len(st.to_bytes())
    assert size <= 10_500, size
    assert size >= 4 * 768 + 1024 * 4


def test_corrupt_bytes_raise_llmrec_error() -> None:
    st = UserState(DIM)
    st.fold(_axis(0), 1.0, InterestConfig())
    raw = st.to_bytes()
    with pytest.raises(LlmrecError):
        UserState.from_bytes(raw[:-3])
    with pytest.raises(LlmrecError):
        UserState.from_bytes(b"XX" + raw[2:])


def _older(st: UserState, version: int) -> bytes:
    """`st` (with no review vector nor event ids) as bytes of an older version."""
    assert st.review is None
    assert not st.events
    raw = st.to_bytes()
    v3 = struct.Struct("<2sBHBBHHdfffffH")
    fields = list(v3.unpack_from(raw, 0))
    assert fields[1] == 3
    assert fields[-1] == 0  # no event ids: the body follows the header directly
    fields[1] = version
    old = "<2sBHBBHHdff" if version == 1 else "<2sBHBBHHdfffff"
    return struct.pack(old, *fields[: 10 if version == 1 else 13]) + raw[v3.size :]


def test_version_1_state_bytes_still_load() -> None:
    """States written before review vectors (v1 header) load, with an empty review and mood."""
    cfg = InterestConfig()
    st = UserState(DIM)
    st.fold(_axis(0), 1.0, cfg)
    st.remember("a", 1.0, cfg)
    st.note_sentiment(0.5, cfg)
    old = UserState.from_bytes(_older(st, 1))
    assert old.review is None
    assert old.mood_n == 0.0
    assert old.recent == st.recent
    assert not old.events
    assert np.allclose(old.topics[0].centroid, st.topics[0].centroid, atol=1e-3)


def test_version_2_state_bytes_still_load_and_upgrade_to_version_3() -> None:
    """States written before event ids (v2) load with an empty event memory."""
    cfg = InterestConfig()
    st = UserState(DIM)
    st.fold(_axis(0), 1.0, cfg)
    st.fold(_axis(3), -1.0, cfg)
    st.remember("a", 1.0, cfg)
    st.remember("b", -1.0, cfg)
    st.note_sentiment(0.5, cfg)
    v2 = _older(st, 2)
    assert len(v2) == len(st.to_bytes()) - 2
    old = UserState.from_bytes(v2)
    assert not old.events
    assert old.mood == pytest.approx(0.5)
    assert old.disliked == st.disliked
    assert old.to_bytes() == st.to_bytes()  # written back as version 3
    assert not UserState.bytes_have_event(v2, "e1")
    old.note_event("e1", cfg)
    assert UserState.bytes_have_event(old.to_bytes(), "e1")


def test_event_memory_is_bounded_by_config() -> None:
    cfg = InterestConfig(max_event_ids=3)
    st = UserState(DIM)
    for n in range(5):
        st.note_event(f"e{n}", cfg)
    raw = st.to_bytes()
    assert [UserState.bytes_have_event(raw, f"e{n}") for n in range(5)] == [
        False, False, True, True, True,
    ]  # fmt: skip
    assert st.events == [event_hash(f"e{n}") for n in (2, 3, 4)]
    assert event_hash("e1") != event_hash("e2")
    assert event_hash("e1") == event_hash("e1") < 2**64
    with pytest.raises(LlmrecError):
        UserState.from_bytes(raw[:60])  # cut inside the event ids
    assert not UserState.bytes_have_event(raw[:50], "e4")
    assert not UserState.bytes_have_event(b"", "e4")


def test_review_vector_is_signed_by_sentiment_and_kept_apart() -> None:
    cfg = InterestConfig()
    st = UserState(DIM)
    st.fold_review(_axis(1), 1.0, cfg)
    st.fold_review(_axis(2), -1.0, cfg)
    assert st.review is not None
    assert st.review[1] > 0 > st.review[2]
    assert not st.topics  # review text does not enter the item-description topics
    back = UserState.from_bytes(st.to_bytes())
    assert back.review is not None
    assert np.allclose(back.review, st.review, atol=1e-3)
    assert back.review_weight == pytest.approx(2.0)
