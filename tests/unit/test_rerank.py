"""MMR: lambda trades relevance for diversity."""

from __future__ import annotations

import numpy as np

from llmrec.rerank import mmr


def _vectors() -> np.ndarray:
    # items 0-2 are near duplicates, item 3 is different and slightly less relevant
    v = np.array([[1, 0, 0], [0.99, 0.14, 0], [0.99, 0, 0.14], [0, 1, 0]], dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_lambda_one_keeps_relevance_order() -> None:
    assert mmr([0.9, 0.8, 0.7, 0.6], _vectors(), 4, lam=1.0) == [0, 1, 2, 3]


def test_lower_lambda_promotes_the_different_item() -> None:
    scores = [0.9, 0.8, 0.7, 0.6]
    assert mmr(scores, _vectors(), 2, lam=0.9) == [0, 1]
    assert mmr(scores, _vectors(), 2, lam=0.5) == [0, 3]
    order = mmr(scores, _vectors(), 4, lam=0.3)
    assert order[:2] == [0, 3]
    assert sorted(order) == [0, 1, 2, 3]


def test_edge_cases() -> None:
    assert mmr([], np.zeros((0, 3), dtype=np.float32), 3, 0.5) == []
    assert mmr([1.0, 1.0], _vectors()[:2], 5, 0.5) in ([0, 1], [1, 0])


def _mmr_by_the_formula(scores: list[float], vecs: np.ndarray, k: int, lam: float) -> list[int]:
    """MMR as its definition reads: each step the best lam * rel - (1 - lam) * max cosine."""
    rel = np.asarray(scores, dtype=np.float64)
    span = rel.max() - rel.min()
    rel = (rel - rel.min()) / span if span > 0 else np.ones_like(rel)
    chosen: list[int] = []
    n = len(scores)
    for _ in range(min(k, n)):
        closest = [max((float(vecs[i] @ vecs[j]) for j in chosen), default=0.0) for i in range(n)]
        gains = [
            -np.inf if i in chosen else lam * rel[i] - (1 - lam) * closest[i] for i in range(n)
        ]
        chosen.append(int(np.argmax(gains)))
    return chosen


def test_mmr_picks_what_the_formula_picks() -> None:
    rng = np.random.default_rng(0)
    for trial in range(40):
        n = int(rng.integers(1, 60))
        # entries in {-0.5, 0, 0.5}: every dot product is exact, however it is summed
        v = (rng.integers(-1, 2, size=(n, 4)) / 2).astype(np.float32)
        scores = rng.random(n).round(2).tolist()  # rounded: ties happen
        lam = float(rng.choice([0.0, 0.3, 0.7, 0.9, 0.99]))
        assert mmr(scores, v, 10, lam) == _mmr_by_the_formula(scores, v, 10, lam), trial
