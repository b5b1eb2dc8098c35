"""Protocol A: leave-last-out ranking over all items, comparable with published baselines.

Per user, by timestamp (ties in file order): last = test, second-last = validation, rest =
train. Every model is fitted on train only. Validation ranks over all items minus the user's
train items; test ranks over all items minus train items and the validation item (which is not
folded into the model). Ties count for the target. This exact variant reproduces the reference
ml-100k figures (Pop 0.086/0.045, ItemKNN 0.116/0.060, EASE 0.138/0.070).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from llmrec.data.movielens import Interaction
from llmrec.engine import Engine, EngineConfig, fuse
from llmrec.eval.baselines import content_scores, ease_weights, itemknn_weights, pop_scores
from llmrec.eval.data import EvalData, train_events
from llmrec.eval.metrics import KS
from llmrec.index import ItemIndex
from llmrec.types import TextEncoder

__all__ = ["ModelRun", "baseline_runs", "engine_run", "replay_train", "tune_engine", "with_params"]

log = logging.getLogger(__name__)
F64 = npt.NDArray[np.float64]
DEPTH = max(KS)


@dataclass(slots=True)
class ModelRun:
    """One model's validation and test ranks (0-based; DEPTH = not in the top DEPTH)."""

    name: str
    val: list[int]
    test: list[int]
    test_top10: list[list[str]] = field(default_factory=list)
    params: dict[str, object] = field(default_factory=dict)


def _exclusions(data: EvalData, with_val: bool) -> list[list[int]]:
    out = []
    for u in data.users:
        cols = [data.col[r.item_id] for r in data.split.train[u]]
        if with_val:
            cols.append(data.col[data.split.validation[u].item_id])
        out.append(cols)
    return out


def _dense_ranks(
    data: EvalData, score_row: Callable[[int], F64], with_val: bool
) -> tuple[list[int], list[list[str]]]:
    targets = data.split.test if with_val else data.split.validation
    ranks, tops = [], []
    for ui, (u, excl) in enumerate(zip(data.users, _exclusions(data, with_val), strict=True)):
        s = np.array(score_row(ui), dtype=np.float64)
        s[excl] = -np.inf
        t = data.col[targets[u].item_id]
        ranks.append(min(int(np.count_nonzero(s > s[t])), DEPTH))
        top = np.argpartition(-s, 10)[:10]
        tops.append([data.items[j] for j in top[np.argsort(-s[top], kind="stable")]])
    return ranks, tops


def _run(name: str, data: EvalData, score_row: Callable[[int], F64], **params: object) -> ModelRun:
    val, _ = _dense_ranks(data, score_row, with_val=False)
    test, tops = _dense_ranks(data, score_row, with_val=True)
    return ModelRun(name, val, test, tops, dict(params))


def baseline_runs(
    data: EvalData,
    item_vectors: npt.NDArray[np.float32],
    knn_k: int = 400,
    ease_lambda: float = 100.0,
) -> Iterable[ModelRun]:
    """Pop, ItemKNN, EASE and content-only, fitted on train (a generator: one at a time)."""
    x = data.x_train
    pop = pop_scores(x)
    yield _run("Pop", data, lambda _: pop)
    knn = itemknn_weights(x, knn_k)
    yield _run("ItemKNN", data, lambda u: np.asarray(x[u] @ knn).ravel(), k=knn_k)
    ease = ease_weights(x, ease_lambda)
    yield _run("EASE", data, lambda u: np.asarray(x[u] @ ease).ravel(), lam=ease_lambda)
    content = content_scores(x, item_vectors)
    yield _run("Content", data, lambda u: content[u])


def replay_train(
    data: EvalData, config: EngineConfig, index: ItemIndex, encoder: TextEncoder | None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Engine, dict[str, bytes]]:  # fmt: skip
    """Feed every train event, in time order, through `Engine.observe`; return engine + states."""
    titles = {i: m.title for i, m in data.dataset.movies.items()}
    engine = Engine(config, index, encoder, titles=titles)
    states: dict[str, bytes] = {}
    for n, ev in enumerate(train_events(data), 1):
        states[ev.user_id] = engine.observe(states.get(ev.user_id), ev)
        if progress is not None and n % 1000 == 0:
            progress(1000)
    return engine, states


def _engine_ranks(
    engine: Engine, data: EvalData, states: dict[str, bytes], with_val: bool
) -> tuple[list[int], list[list[str]]]:
    targets: dict[str, Interaction] = data.split.test if with_val else data.split.validation
    ranks, tops = [], []
    for u in data.users:
        exclude = {r.item_id for r in data.split.train[u]}
        if with_val:
            exclude.add(data.split.validation[u].item_id)
        recs = [r.item_id for r in engine.recommend(states.get(u), DEPTH, targets[u].ts, exclude)]
        t = targets[u].item_id
        ranks.append(recs.index(t) if t in recs else DEPTH)
        tops.append(recs[:10])
    return ranks, tops


def engine_run(
    name: str, engine: Engine, data: EvalData, states: dict[str, bytes], val_only: bool = False
) -> ModelRun:
    """Rank validation (and test unless `val_only`) items with `engine.recommend`."""
    val, _ = _engine_ranks(engine, data, states, with_val=False)
    test, tops = ([], []) if val_only else _engine_ranks(engine, data, states, with_val=True)
    return ModelRun(name, val, test, tops)


def _ndcg10(ranks: list[int]) -> float:
    return float(np.mean([1.0 / np.log2(r + 2) if r < 10 else 0.0 for r in ranks]))


def with_params(base: EngineConfig, params: dict[str, float]) -> EngineConfig:
    """`base` with retrieval fields and `mmr_lambda` overridden by `params`."""
    retrieval: dict[str, Any] = {k: v for k, v in params.items() if k != "mmr_lambda"}
    lam = params.get("mmr_lambda", base.rerank.mmr_lambda)
    return replace(
        base,
        retrieval=replace(base.retrieval, **retrieval),
        rerank=replace(base.rerank, mmr_lambda=lam),
    )


def tune_engine(
    engine: Engine, data: EvalData, states: dict[str, bytes], grid: list[dict[str, float]],
    progress: Callable[[int], None] | None = None,
) -> tuple[EngineConfig, list[tuple[dict[str, float], float]]]:  # fmt: skip
    """Pick the fusion/MMR weights with the best validation NDCG@10 (test is never read).

    Candidates and their features do not depend on the weights, so they are gathered once per
    user (`Engine.candidates`) and every grid point only re-fuses and re-orders them, exactly as
    `Engine.recommend` does.
    """
    base = engine.config
    gathered = []
    for u in data.users:
        target = data.split.validation[u]
        exclude = {r.item_id for r in data.split.train[u]}
        _, c = engine.candidates(states.get(u), target.ts, exclude)
        gathered.append((c, target.item_id))  # (candidates, held-out item id)
    scored = []
    for params in grid:
        engine.config = with_params(base, params)
        ranks = []
        for c, item in gathered:
            order = [] if c is None else engine.order(c, fuse(c, engine.config.retrieval), DEPTH)
            recs = [c.ids[j] for j in order] if c is not None else []
            ranks.append(recs.index(item) if item in recs else DEPTH)
        scored.append((params, _ndcg10(ranks)))
        log.info("tune %s -> val NDCG@10 %.4f", params, scored[-1][1])
        if progress is not None:
            progress(1)
    best = max(scored, key=lambda ps: ps[1])[0]
    engine.config = with_params(base, best)
    return engine.config, scored
