"""SASRec on a toy catalogue where item i is always followed by item i+1 (mod 30)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("torch_rechub")

from llmrec.eval.sasrec import (
    SASRecFit,
    SASRecParams,
    SASRecScorer,
    fit_sasrec,
    tune_sasrec,
)
from llmrec.eval.trainset import I64, Scorer, TrainSet

pytestmark = pytest.mark.slow
Fitted = tuple[TrainSet, SASRecScorer, SASRecFit]

CYCLE = 30  # items 0..29 form the cycle; items 30..32 never occur in training
N_ITEMS = CYCLE + 3
PARAMS = SASRecParams(
    hidden=32, max_len=12, dropout=0.1, lr=1e-2, batch_size=64, epochs=40, eval_every=2,
    patience=3, seed=7,
)  # fmt: skip


def _toy(n_users: int = 300, seed: int = 0) -> TrainSet:
    rng = np.random.default_rng(seed)
    histories, times = [], []
    for _ in range(n_users):
        start, length = int(rng.integers(CYCLE)), int(rng.integers(6, 16))
        histories.append((start + np.arange(length, dtype=np.int64)) % CYCLE)
        times.append(np.arange(length, dtype=np.float64))
    return TrainSet(n_items=N_ITEMS, histories=histories, times=times)


def _next_item_hit_rate(scorer: Scorer, histories: list[I64]) -> float:
    s = scorer.scores(np.arange(len(histories)), histories, np.zeros(len(histories)))
    truth = (np.array([h[-1] for h in histories]) + 1) % CYCLE
    return float(np.mean(s.argmax(axis=1) == truth))


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Toy tensors are tiny: one thread is fastest, and immune to a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def fitted() -> Fitted:
    train = _toy()
    probes = [h[:-1] for h in _toy(60, seed=1).histories]  # unseen prefixes of the pattern
    scorer, fit = fit_sasrec(train, PARAMS, lambda s: _next_item_hit_rate(s, probes))
    return train, scorer, fit


def test_ranks_the_true_next_item_first(fitted: Fitted) -> None:
    _, scorer, _ = fitted
    fresh = [h[:-1] for h in _toy(100, seed=2).histories]
    assert _next_item_hit_rate(scorer, fresh) >= 0.9


def test_uses_the_given_history_not_the_train_one(
    fitted: Fitted,
) -> None:
    train, scorer, _ = fitted
    users = np.arange(20)
    base = [train.histories[u] for u in users]
    longer = [np.append(h, (h[-1] + 1) % CYCLE) for h in base]
    s_base = scorer.scores(users, base, np.zeros(20))
    s_longer = scorer.scores(users, longer, np.zeros(20))
    appended = np.array([h[-1] for h in longer])
    assert np.mean(s_base.argmax(axis=1) == appended) > 0.8  # the appended item was predicted
    assert np.mean(s_longer.argmax(axis=1) == (appended + 1) % CYCLE) > 0.8  # and moves it on


def test_unseen_items_score_minus_inf_and_rows_are_batched(
    fitted: Fitted,
) -> None:
    train, scorer, _ = fitted
    histories = [train.histories[0], np.array([3, 31, 4], dtype=np.int64), train.histories[5]]
    s = scorer.scores(np.arange(3), histories, np.zeros(3))
    assert s.shape == (3, N_ITEMS)
    assert s.dtype == np.float64
    assert np.all(s[:, CYCLE:] == -np.inf)
    assert np.all(np.isfinite(s[:, :CYCLE]))
    # The unseen item 31 is ignored as input: [3, 31, 4] is read as [3, 4].
    assert s[1].argmax() == 5
    # One history at a time gives the same rows as the whole matrix.
    for j, h in enumerate(histories):
        np.testing.assert_allclose(
            scorer.scores(np.arange(1), [h], np.zeros(1))[0], s[j], rtol=1e-5, atol=1e-5
        )


def test_early_stopping_keeps_the_best_epoch(fitted: Fitted) -> None:
    _, _, fit = fitted
    epochs = [e for e, _ in fit.curve]
    scores = [v for _, v in fit.curve]
    assert epochs == list(range(PARAMS.eval_every, fit.epochs_run + 1, PARAMS.eval_every))
    assert fit.best_score == max(scores)
    assert fit.best_epoch == epochs[scores.index(max(scores))]
    assert fit.epochs_run <= PARAMS.epochs
    assert fit.train_seconds > 0
    assert fit.seconds >= fit.train_seconds


def test_fixed_epochs_without_evaluate_and_deterministic_given_seed() -> None:
    train = _toy(120)
    params = SASRecParams(hidden=16, max_len=8, epochs=3, batch_size=64, seed=3)
    a, fit_a = fit_sasrec(train, params)
    b, _ = fit_sasrec(train, params)
    assert fit_a.curve == ()
    assert fit_a.epochs_run == fit_a.best_epoch == 3
    hs = list(train.histories[:10])
    np.testing.assert_array_equal(
        a.scores(np.arange(10), hs, np.zeros(10)), b.scores(np.arange(10), hs, np.zeros(10))
    )


def test_tune_keeps_the_configuration_with_the_best_validation_score() -> None:
    train = _toy(120)
    grid = (
        SASRecParams(hidden=16, max_len=8, epochs=2, eval_every=1, batch_size=64, lr=1e-5),
        SASRecParams(hidden=16, max_len=8, epochs=6, eval_every=1, batch_size=64, lr=1e-2),
    )
    probes = [h[:-1] for h in train.histories]
    _, chosen, trials = tune_sasrec(train, lambda s: _next_item_hit_rate(s, probes), grid)
    assert len(trials) == 2
    assert chosen == grid[int(np.argmax([t["val_score"] for t in trials]))]
    assert {"hidden", "max_len", "dropout", "best_epoch", "val_score", "seconds"} <= set(trials[0])
