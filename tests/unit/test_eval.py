"""The evaluation on hand-checked toy cases: ties, the leak rule, dedupe, tuning, history, CIs."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmrec.data.contract import ContractDataset, from_records
from llmrec.engine import EngineConfig
from llmrec.eval import (
    EvalOptions,
    Outcomes,
    hit_rate,
    mrr,
    ndcg,
    run_eval,
    summarise,
    write_report,
)
from llmrec.eval.baselines import (
    BASELINES,
    BaselineSpec,
    MatrixScorer,
    ease_weights,
    itemknn_weights,
    pop_scores,
)
from llmrec.eval.data import build_index, prepare
from llmrec.eval.metrics import outcomes_from_scores
from llmrec.eval.protocol_a import baseline_run, replay_train, score_outcomes, with_params
from llmrec.eval.protocol_b import prequential
from llmrec.eval.ranked import gather, linear_run
from llmrec.eval.stats import paired_bootstrap
from llmrec.eval.trainset import TrainSet
from llmrec.exceptions import DatasetError
from tests.unit.fakes_recsys import HashingEncoder


def _ev(user: str, item: str, ts: float, kind: str = "purchase", **extra: Any) -> dict[str, Any]:
    n = _ev.counter = getattr(_ev, "counter", 0) + 1  # type: ignore[attr-defined]
    return {"event_id": f"e{n}", "type": kind, "user_id": user, "item_id": item, "ts": ts, **extra}


def _no_validation(scorer: object) -> float:
    raise AssertionError("this model does not validate while fitting")


def _items(ids: list[str]) -> list[dict[str, Any]]:
    return [{"item_id": i, "title": f"item {i}", "ts": 0} for i in ids]


def _dataset(events: list[dict[str, Any]], items: list[str] | None = None) -> ContractDataset:
    ids = items or sorted({e["item_id"] for e in events})
    return from_records("toy", _items(ids), events)


# -- metrics and ties ------------------------------------------------------------------------


def test_strict_ranks_give_the_usual_metrics() -> None:
    o = Outcomes.from_ranks([0, 2, 9, 10, 60])
    assert hit_rate(o, 10) == pytest.approx(3 / 5)
    assert hit_rate(o, 1) == pytest.approx(1 / 5)
    expected = (1 / math.log2(2) + 1 / math.log2(4) + 1 / math.log2(11)) / 5
    assert ndcg(o, 10) == pytest.approx(expected)
    assert mrr(o, 50) == pytest.approx((1 + 1 / 3 + 1 / 10 + 1 / 11) / 5)
    assert summarise(o)["HR@50"] == pytest.approx(4 / 5)


def test_a_tie_is_neither_a_free_hit_nor_a_free_miss() -> None:
    # 8 items above the target, 3 tied with it: rank uniform on 8..11.
    o = Outcomes(np.array([8]), np.array([3]))
    assert hit_rate(o, 10) == pytest.approx(2 / 4)
    assert ndcg(o, 10) == pytest.approx((1 / math.log2(10) + 1 / math.log2(11)) / 4)
    assert mrr(o, 50) == pytest.approx(sum(1 / r for r in (9, 10, 11, 12)) / 4)


def test_outcomes_from_scores_skip_excluded_items_and_count_ties() -> None:
    scores = np.array([[0.5, 9.0, 0.9, 0.5, 0.1, -np.inf, -np.inf]])
    o = outcomes_from_scores(scores, np.array([0]), [np.array([1])])
    assert (int(o.greater[0]), int(o.ties[0])) == (1, 1)  # item 1 excluded, 2 above, 3 ties
    o = outcomes_from_scores(scores, np.array([5]), [np.array([1])])
    assert (int(o.greater[0]), int(o.ties[0])) == (4, 1)  # -inf ties with -inf
    with pytest.raises(ValueError, match="excluded"):
        outcomes_from_scores(scores, np.array([1]), [np.array([1])])


def test_rounding_noise_is_a_tie() -> None:
    scores = np.array([[2.0, 1e-16, -3e-16, 0.0, 5e-7]])
    o = outcomes_from_scores(scores, np.array([3]), [np.zeros(0, dtype=np.int64)])
    assert (int(o.greater[0]), int(o.ties[0])) == (2, 2)  # 2.0 and 5e-7 above; noise ties


def test_a_sparse_model_gets_no_credit_for_ties() -> None:
    """ItemKNN on sparse data scores most items 0; the old rule counted every tie as a hit."""
    rng = np.random.default_rng(0)
    n_items, users = 200, 100
    scores = np.zeros((users, n_items))
    scores[:, :3] = rng.random((users, 3)) + 1.0  # three neighbours, none of them the target
    targets = rng.integers(10, n_items, size=users)
    o = outcomes_from_scores(scores, targets, [np.zeros(0, dtype=np.int64)] * users)
    old_rule_hr = float(np.mean(o.greater < 10))  # "ties go to the target"
    assert old_rule_hr == 1.0
    # Fair: 3 above, 196 tied: P(rank < 10) = 7 / 197.
    assert hit_rate(o, 10) == pytest.approx(7 / 197)


# -- the split: dedupe and the leak rule ----------------------------------------------------


def test_repeated_pairs_are_collapsed_first_occurrence_kept() -> None:
    ds = _dataset([
        _ev("u", "a", 1), _ev("u", "b", 2), _ev("u", "a", 3), _ev("u", "c", 4), _ev("u", "d", 5),
    ])  # fmt: skip
    data = prepare(ds)
    assert data.counts["repeated_pair_events"] == 1
    assert data.counts["pairs"] == 4
    assert [data.items[j] for j in data.train.histories[0]] == ["a", "b"]
    assert data.items[int(data.val_item[0])] == "c"
    assert data.items[int(data.test_item[0])] == "d"
    # The repeat on train pair "a" is a train event (the stream would see it).
    assert [e.item_id for e in data.train_events] == ["a", "b", "a"]


def test_nothing_about_held_out_items_reaches_training() -> None:
    day = 86_400.0
    ds = _dataset([
        _ev("u", "a", day), _ev("u", "b", 2 * day),
        _ev("u", "v", 3 * day, "rating", rating=4),
        _ev("u", "t", 3 * day, "rating", rating=5),
        # Same day as the held-out pairs, after them in the file: a review of each.
        _ev("u", "v", 3 * day, "review", text="great", rating=4),
        _ev("u", "t", 3 * day, "review", text="the best", rating=5),
        _ev("w", "t", 4 * day), _ev("w", "a", 4 * day), _ev("w", "b", 5 * day),
    ])  # fmt: skip
    data = prepare(ds)
    u = data.users.index("u")
    assert data.items[int(data.test_item[list(data.evaluated).index(u)])] == "t"
    leaked = [e for e in data.train_events if e.user_id == "u" and e.item_id in {"v", "t"}]
    assert leaked == []
    assert {data.items[j] for j in data.train.histories[u]} == {"a", "b"}
    assert [e.type.value for e in data.val_events["u"]] == ["rating", "review"]
    # Another user's events on "t" are train data: only the held-out user's pair is hidden.
    assert any(e.user_id == "w" and e.item_id == "t" for e in data.train_events)


def test_users_with_fewer_than_three_items_are_train_only() -> None:
    ds = _dataset([_ev("u", "a", 1), _ev("u", "b", 2), _ev("v", "a", 3)])
    data = prepare(ds)
    assert len(data.evaluated) == 0
    assert data.train.n_users == 2
    with pytest.raises(DatasetError, match="no user has 3 distinct items"):
        run_eval(ds, HashingEncoder(8))


# -- baselines -------------------------------------------------------------------------------


def test_baselines_on_a_toy_matrix() -> None:
    tr = TrainSet(4, [np.array([0, 1]), np.array([0, 1, 2]), np.array([2, 3])], [np.zeros(2)] * 3)
    x = tr.matrix
    assert pop_scores(x).tolist() == [2, 2, 2, 1]
    knn = itemknn_weights(x, k=2)
    assert knn[0, 1] == pytest.approx(1.0)  # items 0 and 1 always together
    assert np.all(np.diag(knn) == 0)
    ease = ease_weights(x, lam=1.0)
    assert np.all(np.diag(ease) == 0)
    assert ease[0, 1] > ease[0, 3]


@pytest.mark.parametrize(("n_users", "n_items"), [(40, 12), (6, 25)])
def test_ease_from_one_decomposition_matches_the_closed_form(n_users: int, n_items: int) -> None:
    rng = np.random.default_rng(1)
    hist = [
        rng.choice(n_items, size=int(rng.integers(1, 6)), replace=False).astype(np.int64)
        for _ in range(n_users)
    ]
    tr = TrainSet(n_items, hist, [np.zeros(len(h)) for h in hist])
    fit = BASELINES["ease"].prepare(tr, np.zeros((n_items, 2), dtype=np.float32), _no_validation)
    for lam in (0.5, 50.0):
        got = fit({"lam": lam}).scores(np.arange(n_users), hist, np.zeros(n_users))
        want = tr.matrix.toarray() @ ease_weights(tr.matrix, lam)
        np.testing.assert_allclose(got, want, atol=1e-9)


def _sequence_dataset(seed: int = 0) -> ContractDataset:
    """Users walk a ring of 12 items one step at a time: the next item follows the last."""
    rng = random.Random(seed)
    events = []
    for u in range(40):
        start = rng.randrange(12)
        for step in range(5):
            events.append(_ev(f"u{u}", f"i{(start + step) % 12}", 1000 * u + step))
    return _dataset(events, [f"i{n}" for n in range(12)])


def test_baseline_tuning_picks_the_best_point_of_its_grid() -> None:
    data = prepare(_sequence_dataset())
    vectors = np.zeros((len(data.items), 4), dtype=np.float32)
    spec = BASELINES["transition"]
    run = baseline_run(spec, data, vectors)
    assert len(run.tuning) == len(spec.grid)
    assert run.params in [dict(p) for p in spec.grid]
    best = max(run.tuning, key=lambda row: row["val_NDCG@10"])
    assert run.params == best["params"]
    # On a ring, the last item's successor is the answer: n_last=1 must win on validation.
    assert run.params["n_last"] == 1
    assert hit_rate(run.test, 1) == pytest.approx(1.0)


def test_at_test_every_model_sees_the_validation_interaction() -> None:
    """Transition from the validation item is the only way to rank the test item first."""
    data = prepare(_sequence_dataset())
    fit = BASELINES["transition"].prepare(
        data.train, np.zeros((12, 2), dtype=np.float32), _no_validation
    )
    scorer = fit({"n_last": 1, "decay": 0.5, "beta": 0.0})
    with_val, _ = score_outcomes(data, scorer, test=True)
    assert hit_rate(with_val, 1) == pytest.approx(1.0)
    # Without the validation item the model would predict two steps back: the val item itself.
    two_back = outcomes_from_scores(
        scorer.scores(data.evaluated, [data.train.histories[int(u)] for u in data.evaluated],
                      data.test_ts),
        data.val_item, [data.train.histories[int(u)] for u in data.evaluated],
    )  # fmt: skip
    assert hit_rate(two_back, 1) == pytest.approx(1.0)


def test_the_hybrid_folds_the_validation_events_before_ranking_test() -> None:
    # Item c co-occurs only with b: only a history holding b (the validation item) finds it.
    events = []
    for u in range(30):
        pair = ("a", "b") if u % 2 else ("b", "c")
        events += [_ev(f"x{u}", pair[0], u * 10), _ev(f"x{u}", pair[1], u * 10 + 1)]
        # Two filler items of their own, held out, so the pair itself is train data.
        events += [_ev(f"x{u}", f"f{u}", u * 10 + 2), _ev(f"x{u}", f"h{u}", u * 10 + 3)]
    events += [_ev("me", "g", 1000), _ev("me", "a", 1001), _ev("me", "b", 1002)]
    events += [_ev("me", "c", 1003)]
    ds = _dataset(events)
    data = prepare(ds)
    me = list(data.evaluated).index(data.users.index("me"))
    assert data.items[int(data.val_item[me])] == "b"
    enc = HashingEncoder(16)
    index, _ = build_index(ds, data.items, enc)
    config = EngineConfig()
    engine, states, _ = replay_train(data, config, index, enc)
    val, test = gather(engine, data, states)
    run = linear_run(
        "h",
        engine,
        val,
        test,
        grid=[{"w_content": 0.0, "w_popular": 0.0}],
        with_params=lambda p: with_params(config, p),
    )
    assert int(run.test.greater[me]) == 0  # c first, found through b
    assert "b" not in [data.items[j] for j in run.test_top10[me]]


def test_recent_popularity_has_no_look_ahead() -> None:
    tr = TrainSet(3, [np.array([0]), np.array([1]), np.array([1])], [
        np.array([10.0]), np.array([50.0]), np.array([60.0]),
    ])  # fmt: skip
    fit = BASELINES["recentpop"].prepare(tr, np.zeros((3, 2), dtype=np.float32), _no_validation)
    s = fit({"half_life_days": math.inf}).scores(np.arange(2), [np.zeros(0, np.int64)] * 2,
                                                  np.array([20.0, 60.0]))  # fmt: skip
    assert s[0].tolist() == [1.0, 0.0, 0.0]  # item 1's events come after t=20
    assert s[1].tolist() == [1.0, 2.0, 0.0]


@pytest.mark.slow
def test_sasrec_is_a_baseline_tuned_and_early_stopped_on_validation() -> None:
    pytest.importorskip("torch_rechub")
    data = prepare(_sequence_dataset())
    grid = ({"hidden": 16, "max_len": 5, "epochs": 30, "patience": 2},)
    spec = replace(BASELINES["sasrec"], grid=grid)
    run = baseline_run(spec, data, np.zeros((12, 2), dtype=np.float32))
    assert 1 <= run.params["best_epoch"] <= run.params["epochs_run"] <= 30
    assert run.tuning[0]["val_NDCG@10"] == pytest.approx(ndcg(run.val, 10))
    assert hit_rate(run.test, 1) > 0.5  # the ring's next item, from the validation item


def test_constant_scorer_ties_are_fair_in_a_run() -> None:
    data = prepare(_sequence_dataset())
    flat = BaselineSpec("Flat", ({},), lambda tr, v, val: lambda p: MatrixScorer(
        np.zeros((tr.n_items, tr.n_items)), tr.n_items))  # fmt: skip
    run = baseline_run(flat, data, np.zeros((12, 2), dtype=np.float32))
    # Every candidate ties: 12 items minus 4 history items = 8 candidates, so HR@1 = 1/8.
    assert hit_rate(run.test, 1) == pytest.approx(1 / 8)


# -- confidence intervals --------------------------------------------------------------------


def test_paired_bootstrap() -> None:
    a = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0] * 20)
    same = paired_bootstrap(a, a)
    assert (same.diff, same.low, same.high) == (0.0, 0.0, 0.0)
    better = paired_bootstrap(a, a - 0.1 * (a > 0))
    assert better.low > 0
    assert better.high < 0.2
    assert better.diff == pytest.approx(0.1 * a.mean())


# -- the whole run ---------------------------------------------------------------------------


def _tiny_dataset(seed: int = 0) -> ContractDataset:
    rng = random.Random(seed)
    words = {"c": "kitchen recipe chef", "s": "space robot alien"}
    genres = {"c": ["Cooking", "Documentary"], "s": ["Sci-Fi", "Action"]}
    items = [
        {"item_id": f"{g}{n}", "title": f"{words[g]} story {n}", "categories": genres[g], "ts": 0}
        for g in "cs"
        for n in range(12)
    ]
    events = []
    ts = 1_000_000
    for u in range(24):
        taste = "cs"[u % 2]
        for _ in range(9):
            g = taste if rng.random() < 0.8 else "cs"[(u + 1) % 2]
            ts += rng.randrange(1, 600)
            events.append(_ev(str(u), f"{g}{rng.randrange(12)}", ts, "rating",
                              rating=rng.randint(1, 5)))  # fmt: skip
        events.append(_ev(str(u), f"{taste}0", ts - 5, "review", text="loved it"))
    events.append({"event_id": "bad", "type": "rating", "user_id": "1", "item_id": "c1", "ts": 1})
    return from_records("tiny", items, events)


def test_report_is_produced_on_a_tiny_dataset(tmp_path: Path) -> None:
    ds = _tiny_dataset()
    assert len(ds.errors) == 1  # the rating without a rating value
    grid = ({"w_content": 0.2, "w_popular": 0.2}, {"w_content": 0.5, "mmr_lambda": 0.8})
    # SASRec trains for seconds even here; tests/unit/test_sasrec.py and the test below cover it.
    baselines = [b for b in BASELINES if b != "sasrec"]
    opts = EvalOptions(
        grid=grid, baselines=baselines, stream_max_checks=40, bootstrap_resamples=200
    )
    doc = run_eval(ds, HashingEncoder(32), opts)
    a = doc["protocol_a"]
    models = a["models"]
    names = {BASELINES[b].name for b in baselines}
    ablations = {"Hybrid − co-visitation", "Hybrid − review text", "Hybrid − text",
                 "Hybrid − hierarchy", "Hybrid, hashing encoder"}  # fmt: skip
    assert set(models) == names | {"Hybrid", "Hybrid, linear fusion"} | ablations
    for m in models.values():
        assert 0.0 <= m["test"]["HR@10"] <= 1.0
        assert m["test"]["users"] == doc["evaluated_users"]
        assert 0.0 < m["coverage@10"] <= 1.0
    assert set(a["hybrid_minus_baseline"]) == names
    assert set(a["ablations"]) == ablations | {"Hybrid, linear fusion"}
    assert a["best_baseline"] in names
    assert len(models["EASE"]["tuning"]) == len(BASELINES["ease"].grid)
    assert len(models["Hybrid, linear fusion"]["tuning"]) == 2
    assert a["ranker"]["train_groups"] >= 10
    assert 0.0 < a["ranker"]["train_target_retrieved"] <= 1.0
    assert "mmr_lambda" in models["Hybrid"]["params"]
    assert doc["counts"]["invalid_records"] == 1
    assert doc["protocol_b"]["checked"] > 0
    paths = write_report(doc, tmp_path / "tiny")
    assert {p.name for p in paths} == {"report.json", "report.md", "hr_at_k.png", "slices.png"}
    text = (tmp_path / "tiny" / "report.md").read_text()
    assert "| Hybrid |" in text
    assert "Ablations" in text
    assert "Protocol B" in text
    assert json.loads((tmp_path / "tiny" / "report.json").read_text())["dataset"] == "tiny"


def test_protocol_b_has_no_look_ahead() -> None:
    """Popular-now at an event's time knows only earlier events."""
    events = [_ev(f"a{u}", "A", u) for u in range(10)]  # A becomes popular
    events += [_ev("z0", "Z", 10)]  # Z's first event: nothing before it says Z
    events += [_ev(f"z{u}", "Z", 10 + u) for u in range(1, 20)]
    ds = _dataset(events, ["A", "Z", "f1", "f2", "f3"])
    enc = HashingEncoder(16)
    index, _ = build_index(ds, sorted(ds.items), enc)
    result = prequential(ds, EngineConfig(), index, enc, user_fraction=1.0, warmup_fraction=0.0)
    assert result.checked == 30
    # Hits: a1..a9 (A already popular) and z1..z19 (Z popular after z0); a0 and z0 cannot be
    # hit without seeing the future.
    assert result.popular_hr == pytest.approx(28 / 30)
