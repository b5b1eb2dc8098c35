"""The learned ranker: it learns what the stream teaches, round-trips, hot-swaps, batches."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmrec.engine import Engine, EngineConfig
from llmrec.events import Event, parse_event
from llmrec.ranker.features import FEATURES, feature_matrices, feature_matrix
from llmrec.ranker.model import Ranker
from llmrec.ranker.store import RankerWatcher, load_current, publish
from llmrec.ranker.train import FitConfig, Group, SampleConfig, fit_ranker, train_on_stream
from tests.unit.fakes_recsys import HashingEncoder, build_index

FAST = FitConfig(grid=({"num_leaves": 7, "min_data_in_leaf": 5},), max_rounds=60, threads=1)


def _synthetic_groups(n: int, seed: int) -> list[Group]:
    """Groups of 30 random rows where the engaged row has the largest "popular" value."""
    rng = np.random.default_rng(seed)
    groups = []
    for _ in range(n):
        x = rng.random((30, len(FEATURES))).astype(np.float32)
        y = np.zeros(30, dtype=np.int8)
        y[int(np.argmax(x[:, FEATURES.index("popular")]))] = 1
        groups.append(Group(x, y, 0.0))
    return groups


def _hits_at_1(ranker: Ranker, groups: list[Group]) -> float:
    return float(np.mean([g.y[int(np.argmax(ranker.score(g.x)))] for g in groups]))


def test_ranker_learns_an_obvious_feature() -> None:
    ranker = fit_ranker(_synthetic_groups(300, 0), _synthetic_groups(100, 1), fit=FAST)
    assert _hits_at_1(ranker, _synthetic_groups(200, 2)) > 0.6  # chance: 1/30
    gain = dict(zip(FEATURES, ranker.booster.feature_importance("gain"), strict=True))
    assert max(gain, key=lambda f: gain[f]) == "popular"
    blind = fit_ranker(
        _synthetic_groups(300, 0), _synthetic_groups(100, 1),
        [f for f in FEATURES if f != "popular"], fit=FAST,
    )  # fmt: skip
    assert _hits_at_1(blind, _synthetic_groups(200, 2)) < 0.2


def test_ranker_file_round_trips_and_hot_swaps(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = fit_ranker(_synthetic_groups(100, 0), _synthetic_groups(50, 1), fit=FAST, data="a")
    probe = _synthetic_groups(5, 3)[0].x
    watcher = RankerWatcher(tmp_path)
    assert watcher.poll() is None
    assert load_current(tmp_path) is None
    publish(first, tmp_path)
    loaded = watcher.poll()
    assert loaded is not None
    assert loaded.version == first.version
    assert loaded.manifest["data"] == "a"
    assert loaded.manifest["features"] == list(FEATURES)
    np.testing.assert_allclose(loaded.score(probe), first.score(probe), rtol=1e-6)
    assert watcher.poll() is None  # unchanged: nothing to swap
    second = fit_ranker(
        _synthetic_groups(100, 5), _synthetic_groups(50, 6), FEATURES[:10], fit=FAST
    )
    publish(second, tmp_path)
    swapped = watcher.poll()
    assert swapped is not None
    assert swapped.version == second.version != first.version
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    (tmp_path / "current").unlink()
    (tmp_path / "current").symlink_to("broken")
    with caplog.at_level(logging.ERROR):
        assert watcher.poll() is None  # kept the one in use, said so
    assert "cannot be loaded" in caplog.text


# -- a toy stream ----------------------------------------------------------------------------

PHOTO = "great photography camera lenses light exposure tips"
FOOD = "tasty recipes cooking dinner kitchen baking ideas"


def _stream_engine() -> Engine:
    enc = HashingEncoder(64)
    # Every item has the same description, so content cannot tell them apart: only what the
    # crowd wrote about them can.
    items = {f"{g}{i}": "a monthly magazine" for g in ("x", "y", "n") for i in range(8)}
    items["fresh"] = "a monthly magazine"
    return Engine(EngineConfig(), build_index(enc, items), enc)


def _event(n: int, user: str, item: str, kind: str, **kw: Any) -> Event:
    return parse_event(
        {"event_id": f"e{n}", "type": kind, "user_id": user, "item_id": item, "ts": 1e6 + n, **kw}
    )


def _toy_stream(users: int, seed: int) -> list[Event]:
    """A photo fan ("x" items) or a food fan ("y" items) reviews a shared "n" item in their
    words, buys and reviews one of their kind, then buys another of their kind."""
    rng = np.random.default_rng(seed)
    out: list[Event] = []
    for u in range(users):
        kind, text = ("x", PHOTO) if u % 2 else ("y", FOOD)
        a, b = rng.choice(8, size=2, replace=False)
        user = f"u{u}"
        for item, typ, kw in (
            (f"n{rng.integers(8)}", "review", {"text": text, "rating": 5}),
            (f"{kind}{a}", "purchase", {}),
            (f"{kind}{a}", "review", {"text": text, "rating": 5}),
            (f"{kind}{b}", "purchase", {}),
        ):
            out.append(_event(len(out), user, item, typ, **kw))
    return out


def _kinds_on_top(engine: Engine, text: str, k: int = 4) -> str:
    state = engine.observe(None, _event(10**6, "new", "fresh", "review", text=text, rating=5))
    recs = engine.recommend(state, k, now=2e6)
    assert "reviewed in words like yours" in recs[0].reasons
    return "".join(r.item_id[0] for r in recs)


def test_the_best_review_text_match_rises() -> None:
    engine = _stream_engine()
    engine.ranker = train_on_stream(
        engine, _toy_stream(400, 0), sample=SampleConfig(max_groups=2000, negatives=20), fit=FAST
    )
    # A new user who reviewed a fresh item (no co-visitation, no topic difference) in photo
    # words is shown the items photo fans reviewed; in food words, the food items.
    assert _kinds_on_top(engine, PHOTO).count("x") >= 3
    assert _kinds_on_top(engine, FOOD).count("y") >= 3


def test_crowd_text_vectors_update_incrementally() -> None:
    engine = _stream_engine()
    enc = engine.encoder
    assert enc is not None
    assert engine.items.crowd_vector("x1") is None
    texts = [PHOTO, FOOD, PHOTO + " night"]
    for n, text in enumerate(texts):
        engine.observe(None, _event(n, f"u{n}", "x1", "review", text=text, rating=4))
        mean = enc.encode(texts[: n + 1]).mean(axis=0)
        np.testing.assert_allclose(engine.items.crowd_vector("x1"), mean, atol=1e-6)
    assert engine.items.crowd_vector("x2") is None


def test_batched_scoring_matches_one_user_at_a_time() -> None:
    engine = _stream_engine()
    states: dict[str, bytes] = {}
    engine.replay(_toy_stream(60, 1), states)
    engine.ranker = fit_ranker(
        _synthetic_groups(100, 0), _synthetic_groups(50, 1), fit=FAST
    )  # any model: the point is the plumbing
    requests = [(states[u], 2e6, ()) for u in ("u1", "u2", "u3")]
    together = engine.recommend_batch(requests, 5)
    alone = [engine.recommend(s, 5, now) for s, now, _ in requests]
    assert [[r.item_id for r in x] for x in together] == [[r.item_id for r in x] for x in alone]
    assert all(r.reasons for recs in together for r in recs)
    st, c = engine.candidates(states["u1"], 2e6)
    assert c is not None
    x = feature_matrix(st, c, engine.items, 2e6)
    assert x.shape == (len(c.ids), len(FEATURES))


def test_features_of_many_users_are_each_users_own() -> None:
    engine = _stream_engine()
    states: dict[str, bytes] = {}
    engine.replay(_toy_stream(20, 2), states)
    states["cold"] = engine.observe(None, _event(10**6, "cold", "fresh", "purchase"))
    users = []
    for n, user in enumerate(("u1", "cold", "u2", "u7")):  # reviewers, and one who never wrote
        st, c = engine.candidates(states[user], 2e6 + 86_400 * n)
        assert c is not None
        users.append((st, c, 2e6 + 86_400 * n))
    assert users[0][0].review is not None
    assert users[1][0].review is None
    together = feature_matrices(users, engine.items)
    alone = np.concatenate([feature_matrix(st, c, engine.items, now) for st, c, now in users])
    np.testing.assert_array_equal(together, alone)  # bit for bit, NaN where alone has NaN
    assert np.isnan(together[:, FEATURES.index("review_vs_crowd")]).any()
    assert feature_matrices([], engine.items).shape == (0, len(FEATURES))


def test_compiled_scores_are_lightgbms(monkeypatch: pytest.MonkeyPatch) -> None:
    """lleaves' machine code scores as LightGBM does (NaN routed alike), and a ranker whose
    model cannot be compiled still scores, through LightGBM."""
    ranker = fit_ranker(_synthetic_groups(200, 0), _synthetic_groups(50, 1), fit=FAST)
    assert ranker.compiled is not None
    x = np.concatenate([g.x for g in _synthetic_groups(20, 4)])
    x[np.random.default_rng(0).random(x.shape) < 0.2] = np.nan
    by_lightgbm = ranker.booster.predict(x[:, ranker.columns], num_threads=1)
    np.testing.assert_allclose(ranker.score(x), by_lightgbm, rtol=0, atol=1e-12)

    import lleaves

    def refuse(self: Any) -> None:
        raise RuntimeError("no LLVM here")

    monkeypatch.setattr(lleaves.Model, "compile", refuse)
    plain = Ranker(ranker.booster, ranker.manifest)
    assert plain.compiled is None
    np.testing.assert_array_equal(plain.score(x), by_lightgbm)
