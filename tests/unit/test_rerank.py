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
