"""Protocol A: leave-last-out ranking over all items, every model tuned on validation.

The split is `llmrec.eval.data.prepare`'s. Validation ranks each evaluated user's validation item
over all items minus the user's train items, from the train history. Test ranks the test item
over all items minus train and validation items, from a history that includes the validation
interaction (standard leave-one-out, as RecBole's `valid_and_test` and SASRec's papers do):
batch models score the history with the validation item appended, without refitting; the
hybrid folds the user's validation events into that user's state (not into the shared
statistics, which, like every batch model, stay fitted on train). Every model picks its
parameters from its grid by validation NDCG@10; test is read once, with the chosen ones. Ties
are broken at random in expectation (`llmrec.eval.metrics`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from llmrec.engine import Engine, EngineConfig
from llmrec.eval.baselines import BaselineSpec
from llmrec.eval.data import EvalData
from llmrec.eval.metrics import Outcomes, ndcg, outcomes_from_scores
from llmrec.eval.trainset import I64, Scorer
from llmrec.index import ItemIndex
from llmrec.ranker.train import GroupSampler, SampleConfig
from llmrec.types import TextEncoder, Vectors

__all__ = [
    "ModelRun",
    "baseline_run",
    "replay_train",
    "score_outcomes",
    "with_params",
]

log = logging.getLogger(__name__)
Progress = Callable[[int], None]
CHUNK = 512


@dataclass(slots=True)
class ModelRun:
    """One model's validation and test outcomes (users in `EvalData.evaluated` order)."""

    name: str
    val: Outcomes
    test: Outcomes
    test_top10: list[list[int]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    tuning: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def _histories(data: EvalData, test: bool) -> list[I64]:
    hist = [data.train.histories[int(u)] for u in data.evaluated]
    if not test:
        return hist
    return [np.append(h, v) for h, v in zip(hist, data.val_item, strict=True)]


def _top10(scores: np.ndarray[Any, Any], excluded: Sequence[I64], seed: int) -> list[list[int]]:
    """Each row's 10 best items, ties in random order, excluded items never listed."""
    s = np.array(scores, dtype=np.float64, copy=True)
    for r, cols in enumerate(excluded):
        s[r, cols] = -np.inf
    noise = np.random.default_rng(seed).random(s.shape)
    order = np.lexsort((noise, -s), axis=-1)[:, :10]
    return [[int(j) for j in row if np.isfinite(s[r, j])] for r, row in enumerate(order)]


def score_outcomes(
    data: EvalData, scorer: Scorer, test: bool, top10: bool = False
) -> tuple[Outcomes, list[list[int]]]:
    """Rank each evaluated user's held-out item under `scorer`, in chunks of users."""
    hist = _histories(data, test)
    targets = data.test_item if test else data.val_item
    now = data.test_ts if test else data.val_ts
    greater, ties, tops = [], [], []
    for lo in range(0, len(hist), CHUNK):
        sl = slice(lo, lo + CHUNK)
        s = scorer.scores(data.evaluated[sl], hist[sl], now[sl])
        o = outcomes_from_scores(s, targets[sl], hist[sl])
        greater.append(o.greater)
        ties.append(o.ties)
        if top10:
            tops += _top10(s, hist[sl], seed=lo)
    empty = np.zeros(0, dtype=np.int64)
    return Outcomes(np.concatenate(greater or [empty]), np.concatenate(ties or [empty])), tops


def baseline_run(
    spec: BaselineSpec, data: EvalData, vectors: Vectors, progress: Progress | None = None
) -> ModelRun:
    """Fit `spec` at each grid point, keep the best validation NDCG@10, then score test."""
    t0 = time.perf_counter()
    fit = spec.prepare(data.train, vectors, lambda s: ndcg(score_outcomes(data, s, False)[0], 10))
    best: tuple[float, Mapping[str, Any], Scorer, Outcomes] | None = None
    tuning = []
    for params in spec.grid:
        scorer = fit(params)
        val, _ = score_outcomes(data, scorer, test=False)
        score = ndcg(val, 10)
        # A model trained in epochs says which epoch it kept (and how long it trained).
        info = getattr(scorer, "info", {})
        tuning.append({"params": dict(params), "val_NDCG@10": score, **info})
        log.debug("%s %s -> val NDCG@10 %.4f", spec.name, dict(params), score)
        if best is None or score > best[0]:
            best = (score, {**params, **info}, scorer, val)
        if progress is not None:
            progress(1)
    assert best is not None, f"{spec.name} has an empty grid"
    _, params, scorer, val = best
    test, tops = score_outcomes(data, scorer, test=True, top10=True)
    return ModelRun(spec.name, val, test, tops, dict(params), tuning, time.perf_counter() - t0)


# -- the hybrid ------------------------------------------------------------------------------


def replay_train(
    data: EvalData, config: EngineConfig, index: ItemIndex, encoder: TextEncoder | None, *,
    progress: Progress | None = None, sample: SampleConfig | None = None,
) -> tuple[Engine, dict[str, bytes], GroupSampler]:  # fmt: skip
    """Feed every train event, in time order, through `Engine.observe`; return engine + states,
    and the ranker's training groups sampled on the way (`GroupSampler`).
    Texts are encoded in batches ahead of folding (the encoder's cost is per call far more than
    per text)."""
    titles = {i: r.title for i, r in data.dataset.items.items()}
    engine = Engine(config, index, encoder, titles=titles)
    sampler = GroupSampler(engine, len(data.train_events), sample or SampleConfig())
    states: dict[str, bytes] = {}
    engine.replay(data.train_events, states, before=sampler.before, progress=progress)
    return engine, states, sampler


def with_params(base: EngineConfig, params: Mapping[str, float]) -> EngineConfig:
    """`base` with retrieval fields and `mmr_lambda` overridden by `params`."""
    retrieval: dict[str, Any] = {k: v for k, v in params.items() if k != "mmr_lambda"}
    lam = params.get("mmr_lambda", base.rerank.mmr_lambda)
    return replace(
        base,
        retrieval=replace(base.retrieval, **retrieval),
        rerank=replace(base.rerank, mmr_lambda=lam),
    )
