"""MMR: lambda trades relevance for diversity."""

from __future__ import annotations

import numpy as np

from llmrec.rerank import mmr, mmr_batch


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


def _mmr_alone(scores: np.ndarray, vecs: np.ndarray, k: int, lam: float) -> list[int]:
    """MMR of one list, step by step: what `mmr_batch` must give for each of its lists."""
    if len(scores) == 0:
        return []
    span = scores.max() - scores.min()
    rel = (scores - scores.min()) / span if span > 0 else np.ones_like(scores)
    if lam >= 1.0:
        return [int(i) for i in np.argsort(-rel, kind="stable")[:k]]
    max_sim = np.zeros(len(scores))
    chosen: list[int] = []
    for step in range(min(k, len(scores))):
        gain = lam * rel - (1 - lam) * max_sim
        gain[chosen] = -np.inf
        chosen.append(int(np.argmax(gain)))
        sims = vecs @ vecs[chosen[-1]]
        max_sim = sims.astype(np.float64) if step == 0 else np.maximum(max_sim, sims)
    return chosen


def test_a_batch_of_lists_gets_each_lists_own_order() -> None:
    """Lists of every length (none, fewer than k, more) ranked together: each gets the order it
    gets alone, to the bit (real-valued vectors, so sums in another order would show)."""
    rng = np.random.default_rng(1)
    for trial in range(30):
        lists = []
        for n in rng.integers(0, 40, size=int(rng.integers(1, 8))):
            v = rng.standard_normal((int(n), 16)).astype(np.float32)
            v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)
            lists.append((rng.random(int(n)).round(1), v))  # rounded: ties happen
        lam = float(rng.choice([0.0, 0.5, 0.9, 1.0]))
        want = [_mmr_alone(s, v, 10, lam) for s, v in lists]
        assert mmr_batch(lists, 10, lam) == want, trial
    assert mmr_batch([], 10, 0.5) == []
    assert mmr_batch([(np.ones(3), np.eye(3, dtype=np.float32))], 0, 0.5) == [[]]
