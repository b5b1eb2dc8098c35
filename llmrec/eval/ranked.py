"""The hybrid under Protocol A: its candidates gathered once, ranked by LightGBM or the fusion.

Candidates and their features do not depend on how they are scored, so each evaluated user's
candidates are gathered once for validation (state after train) and once for test (the user's
validation events folded in first, not into the shared statistics); every scorer (the learned
ranker, its feature-group ablations, the tuned linear fusion) then ranks the same lists, exactly
as `Engine.recommend_batch` does. The ranker trains on groups sampled from the train replay
(`llmrec.ranker.train.GroupSampler`) and is early-stopped and grid-picked on the validation
groups; the MMR weight is picked on validation too. Test is read once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from llmrec.candidates import Candidates
from llmrec.engine import Engine
from llmrec.eval.data import EvalData
from llmrec.eval.metrics import DEPTH, Outcomes, ndcg
from llmrec.eval.protocol_a import ModelRun
from llmrec.interests import UserState
from llmrec.ranker.features import FEATURES
from llmrec.ranker.model import Ranker
from llmrec.ranker.train import FitConfig, Group, fit_ranker, make_group

__all__ = ["Gathered", "gather", "linear_run", "ranker_run", "val_groups"]

Progress = Callable[[int], None]
MMR_GRID = (1.0, 0.9)
_BATCH = 256


@dataclass(slots=True)
class Gathered:
    """Per evaluated user: state, candidates (None if none), time and target item id."""

    users: list[tuple[UserState, Candidates | None, float]]
    targets: list[str]
    col: Mapping[str, int]

    def top10(self, lists: Sequence[list[str]]) -> list[list[int]]:
        return [[self.col[i] for i in r[:10]] for r in lists]

    def lists(
        self, engine: Engine, mmr_lambda: float, scores: Sequence[npt.NDArray[np.float64] | None]
    ) -> list[list[str]]:
        saved = engine.config
        engine.config = replace(saved, rerank=replace(saved.rerank, mmr_lambda=mmr_lambda))
        try:
            ranked = [
                (n, c, s)
                for n, ((_, c, _), s) in enumerate(zip(self.users, scores, strict=True))
                if c is not None and s is not None
            ]
            out: list[list[str]] = [[] for _ in self.users]
            for lo in range(0, len(ranked), _BATCH):  # MMR steps taken for a batch at once
                part = ranked[lo : lo + _BATCH]
                orders = engine.orders([(c, s) for _, c, s in part], DEPTH)
                for (n, c, _), order in zip(part, orders, strict=True):
                    out[n] = [c.ids[j] for j in order]
            return out
        finally:
            engine.config = saved

    def outcomes(self, lists: Sequence[list[str]]) -> Outcomes:
        return Outcomes.from_ranks(
            [r.index(t) if t in r else DEPTH for r, t in zip(lists, self.targets, strict=True)]
        )


def gather(
    engine: Engine, data: EvalData, states: Mapping[str, bytes]
) -> tuple[Gathered, Gathered]:
    """Validation and test candidates of every evaluated user."""
    users = [data.users[int(u)] for u in data.evaluated]
    val, test = [], []
    for n, u in enumerate(users):
        train_items = {data.items[int(j)] for j in data.train.histories[int(data.evaluated[n])]}
        vt, tt = float(data.val_ts[n]), float(data.test_ts[n])
        st, c = engine.candidates(states.get(u), vt, train_items)
        val.append((st, c, vt))
        state = states.get(u)
        events = data.val_events.get(u, [])
        for ev, vec in zip(events, engine.encode_texts(events), strict=True):
            state = engine.observe(state, ev, shared=False, text_vec=vec)
        st, c = engine.candidates(state, tt, train_items | {data.items[int(data.val_item[n])]})
        test.append((st, c, tt))
    return (
        Gathered(val, [data.items[int(j)] for j in data.val_item], data.col),
        Gathered(test, [data.items[int(j)] for j in data.test_item], data.col),
    )


def _scores(engine: Engine, g: Gathered) -> list[npt.NDArray[np.float64] | None]:
    out: list[npt.NDArray[np.float64] | None] = []
    for lo in range(0, len(g.users), _BATCH):
        out += engine.score_batch(g.users[lo : lo + _BATCH])
    return out


def _pick_mmr(
    engine: Engine, val: Gathered, scores: Sequence[npt.NDArray[np.float64] | None]
) -> tuple[float, Outcomes, list[dict[str, Any]]]:
    best: tuple[float, float, Outcomes] | None = None
    tuning = []
    for lam in MMR_GRID:
        o = val.outcomes(val.lists(engine, lam, scores))
        score = ndcg(o, 10)
        tuning.append({"params": {"mmr_lambda": lam}, "val_NDCG@10": score})
        if best is None or score > best[0]:
            best = (score, lam, o)
    assert best is not None
    return best[1], best[2], tuning


def val_groups(engine: Engine, val: Gathered) -> list[Group]:
    """Validation groups for early stopping: every candidate, where the target was retrieved."""
    rng = np.random.default_rng(0)
    groups = [
        make_group(st, c, engine, now, t, negatives=None, rng=rng)
        for (st, c, now), t in zip(val.users, val.targets, strict=True)
        if c is not None
    ]
    return [g for g in groups if g is not None]


def ranker_run(
    name: str, engine: Engine, val: Gathered, test: Gathered, *, train: Sequence[Group],
    valid: Sequence[Group], features: Sequence[str] = FEATURES,
    fit: FitConfig | None = None,
) -> tuple[ModelRun, Ranker]:  # fmt: skip
    """Train the ranker on `train` groups (over `features`), tune MMR on val, rank test."""
    t0 = time.perf_counter()
    ranker = fit_ranker(train, valid, features, fit)
    saved = engine.ranker
    engine.ranker = ranker
    try:
        lam, val_o, tuning = _pick_mmr(engine, val, _scores(engine, val))
        lists = test.lists(engine, lam, _scores(engine, test))
    finally:
        engine.ranker = saved
    params = {"mmr_lambda": lam, **ranker.manifest["params"], "rounds": ranker.manifest["rounds"]}
    tuning = [*({"params": t} for t in ranker.manifest["tried"]), *tuning]
    run = ModelRun(name, val_o, test.outcomes(lists), test.top10(lists), params, tuning)
    run.seconds = time.perf_counter() - t0
    return run, ranker


def linear_run(
    name: str, engine: Engine, val: Gathered, test: Gathered, *,
    grid: Sequence[Mapping[str, float]], with_params: Callable[[Mapping[str, float]], Any],
) -> ModelRun:  # fmt: skip
    """Tune the linear fusion's weights and MMR on validation, then rank test with the best."""
    t0 = time.perf_counter()
    base = engine.config
    best: tuple[float, Mapping[str, float], Outcomes] | None = None
    tuning = []
    try:
        for params in grid:
            engine.config = with_params(params)
            lam = engine.config.rerank.mmr_lambda
            o = val.outcomes(val.lists(engine, lam, _scores(engine, val)))
            score = ndcg(o, 10)
            tuning.append({"params": dict(params), "val_NDCG@10": score})
            if best is None or score > best[0]:
                best = (score, params, o)
        assert best is not None, "the hybrid's grid is empty"
        engine.config = with_params(best[1])
        lists = test.lists(engine, engine.config.rerank.mmr_lambda, _scores(engine, test))
    finally:
        engine.config = base
    run = ModelRun(name, best[2], test.outcomes(lists), test.top10(lists), dict(best[1]), tuning)
    run.seconds = time.perf_counter() - t0
    return run
