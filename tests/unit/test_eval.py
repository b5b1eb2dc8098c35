"""The evaluation: metrics on a hand-checked case, the split, baselines, and a full tiny report."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from llmrec.data.movielens import Dataset, Interaction, Movie, TagNote
from llmrec.eval import EvalOptions, hit_rate, mrr, ndcg, run_eval, summarise, write_report
from llmrec.eval.baselines import ease_weights, itemknn_weights, pop_scores
from llmrec.eval.metrics import rank_of
from llmrec.eval.split import leave_last_out
from tests.unit.fakes_recsys import HashingEncoder


def test_metrics_on_a_hand_checked_case() -> None:
    ranks = [0, 2, 9, 10, 60]  # 0-based ranks of each user's held-out item
    assert hit_rate(ranks, 10) == pytest.approx(3 / 5)
    assert hit_rate(ranks, 1) == pytest.approx(1 / 5)
    expected = (1 / math.log2(2) + 1 / math.log2(4) + 1 / math.log2(11)) / 5
    assert ndcg(ranks, 10) == pytest.approx(expected)
    assert mrr(ranks, depth=50) == pytest.approx((1 + 1 / 3 + 1 / 10 + 1 / 11) / 5)
    s = summarise(ranks)
    assert s["users"] == 5
    assert s["HR@50"] == pytest.approx(4 / 5)


def test_rank_of_counts_strictly_better_items() -> None:
    scores = np.array([0.5, -np.inf, 0.9, 0.5, 0.1])
    assert rank_of(scores, 0) == 1  # only item 2 is better; the tie with item 3 is not counted
    assert rank_of(scores, 4) == 3


def test_leave_last_out_uses_time_and_file_order_for_ties() -> None:
    rows = [Interaction("u", str(i), 4.0, ts) for i, ts in enumerate([5, 1, 9, 9, 3])]
    split = leave_last_out([*rows, Interaction("v", "1", 3.0, 1)])
    assert [r.item_id for r in split.train["u"]] == ["1", "4", "0"]
    assert split.validation["u"].item_id == "2"
    assert split.test["u"].item_id == "3"
    assert "v" not in split.test  # too short to evaluate: train only


def test_baselines_on_a_toy_matrix() -> None:
    x = sparse.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1]], dtype=float))
    assert pop_scores(x).tolist() == [2, 2, 2, 1]
    knn = itemknn_weights(x, k=2)
    assert knn[0, 1] == pytest.approx(1.0)  # items 0 and 1 always together
    assert np.all(np.diag(knn) == 0)
    ease = ease_weights(x, lam=1.0)
    assert np.all(np.diag(ease) == 0)
    assert ease[0, 1] > ease[0, 3]


def _tiny_dataset(seed: int = 0) -> Dataset:
    rng = random.Random(seed)
    genres = {"c": ("Cooking", "Documentary"), "s": ("Sci-Fi", "Action")}
    words = {"c": "kitchen recipe chef", "s": "space robot alien"}
    movies = {
        f"{g}{n}": Movie(f"{g}{n}", f"{words[g]} story {n}", genres[g])
        for g in "cs"
        for n in range(12)
    }
    ratings, tags = [], []
    ts = 1_000_000
    for u in range(24):
        taste = "cs"[u % 2]
        for _ in range(9):
            g = taste if rng.random() < 0.8 else "cs"[(u + 1) % 2]
            item = f"{g}{rng.randrange(12)}"
            ts += rng.randrange(1, 600)
            if all(r.user_id != str(u) or r.item_id != item for r in ratings):
                ratings.append(Interaction(str(u), item, float(rng.randint(1, 5)), ts))
        tags.append(TagNote(str(u), f"{taste}0", "loved it", ts - 5))
    return Dataset("tiny", movies, ratings, tags)


def test_report_is_produced_on_a_tiny_dataset(tmp_path: Path) -> None:
    ds = _tiny_dataset()
    grid = ({"w_content": 0.2, "w_popular": 0.2}, {"w_content": 0.5, "mmr_lambda": 0.8})
    doc = run_eval(ds, HashingEncoder(32), EvalOptions(grid=grid, stream_max_checks=40))
    models = doc["protocol_a"]["models"]
    assert set(models) == {"Pop", "ItemKNN", "EASE", "Content", "Hybrid"}
    for m in models.values():
        assert 0.0 <= m["test"]["HR@10"] <= 1.0
        assert m["test"]["users"] == doc["users"]
        assert 0.0 < m["coverage@10"] <= 1.0
    assert len(doc["protocol_a"]["tuning"]) == 2
    assert doc["protocol_b"]["checked"] > 0
    assert doc["bytes_per_user"]["max"] > 0
    paths = write_report(doc, tmp_path / "tiny")
    assert {p.name for p in paths} == {"report.json", "report.md", "hr_at_k.png", "slices.png"}
    assert all(p.stat().st_size > 0 for p in paths)
    text = (tmp_path / "tiny" / "report.md").read_text()
    assert "| Hybrid |" in text
    assert "Protocol B" in text
    assert json.loads((tmp_path / "tiny" / "report.json").read_text())["dataset"] == "tiny"
