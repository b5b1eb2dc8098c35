"""One evaluation run: Protocol A (baselines, tuned hybrid, cold-start slice, coverage) and B."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from llmrec.data.movielens import Dataset
from llmrec.engine import EngineConfig
from llmrec.eval.data import EvalData, build_index, prepare
from llmrec.eval.metrics import summarise
from llmrec.eval.protocol_a import ModelRun, baseline_runs, engine_run, replay_train, tune_engine
from llmrec.eval.protocol_b import prequential
from llmrec.types import TextEncoder

__all__ = ["DEFAULT_GRID", "REFERENCE_ML100K", "EvalOptions", "ProgressFactory", "run_eval"]

log = logging.getLogger(__name__)

REFERENCE_ML100K = {
    "Pop": {"HR@10": 0.086, "NDCG@10": 0.045},
    "ItemKNN": {"HR@10": 0.116, "NDCG@10": 0.060},
    "EASE": {"HR@10": 0.138, "NDCG@10": 0.070},
}
COLD_MAX_TRAIN = 5

# Fusion weights searched on validation; each row overrides RetrievalConfig / mmr_lambda.
DEFAULT_GRID: tuple[dict[str, float], ...] = tuple(
    {"w_content": c, "w_popular": p, "w_short": sh, "w_negative": n, "mmr_lambda": lam}
    for c in (0.0, 0.1, 0.2)
    for p in (0.05, 0.15, 0.3)
    for sh in (0.0, 0.3)
    for n in (0.0, 0.3)
    for lam in (1.0, 0.9)
)


ProgressFactory = Callable[[str, int | None], Callable[[int], None]]
"""Makes a progress task from (description, total or None) and returns its `advance(n)`."""


def _no_progress(description: str, total: int | None) -> Callable[[int], None]:
    return lambda n: None


@dataclass(frozen=True, slots=True)
class EvalOptions:
    """What to run and how hard to search."""

    grid: Sequence[dict[str, float]] = DEFAULT_GRID
    knn_k: int = 400
    ease_lambda: float = 100.0
    stream: bool = True
    stream_user_fraction: float = 0.2
    stream_max_checks: int = 2000
    engine: EngineConfig = field(default_factory=EngineConfig)


def _slice(run: ModelRun, mask: list[bool]) -> dict[str, float]:
    ranks = [r for r, m in zip(run.test, mask, strict=True) if m]
    s = summarise(ranks)
    return {"users": s["users"], "HR@10": s["HR@10"], "NDCG@10": s["NDCG@10"]}


def _model_entry(run: ModelRun, data: EvalData, cold: list[bool]) -> dict[str, Any]:
    covered = {i for top in run.test_top10 for i in top}
    return {
        "validation": summarise(run.val),
        "test": summarise(run.test),
        "cold_start": _slice(run, cold),
        "coverage@10": len(covered) / len(data.items),
        "params": run.params,
    }


def run_eval(
    ds: Dataset, encoder: TextEncoder, options: EvalOptions | None = None,
    progress: ProgressFactory = _no_progress,
) -> dict[str, Any]:  # fmt: skip
    """Run every model on `ds` and return the JSON-ready report document."""
    opts = options or EvalOptions()
    t0 = time.perf_counter()
    data = prepare(ds)
    advance = progress("encode items", 1)
    index, vectors = build_index(ds, data.items, encoder)
    advance(1)
    cold = [
        int(data.train_counts[data.col[data.split.test[u].item_id]]) < COLD_MAX_TRAIN
        for u in data.users
    ]
    models: dict[str, dict[str, Any]] = {}
    advance = progress("baselines", 4)
    for run in baseline_runs(data, vectors, opts.knn_k, opts.ease_lambda):
        models[run.name] = _model_entry(run, data, cold)
        advance(1)
    n_train = sum(len(h) for h in data.split.train.values())
    engine, states = replay_train(
        data, opts.engine, index, encoder, progress("replay train", n_train)
    )
    sizes = [len(s) for s in states.values()]
    tuned, scored = tune_engine(
        engine, data, states, list(opts.grid), progress("tune", len(opts.grid))
    )
    advance = progress("hybrid", 1)
    run = engine_run("Hybrid", engine, data, states)
    run.params = {"retrieval": asdict(tuned.retrieval), "mmr_lambda": tuned.rerank.mmr_lambda}
    models["Hybrid"] = _model_entry(run, data, cold)
    advance(1)
    doc: dict[str, Any] = {
        "dataset": ds.name,
        "users": len(data.users),
        "items": len(data.items),
        "interactions": len(ds.ratings),
        "encoder": getattr(encoder, "info", {"encoder": type(encoder).__name__}),
        "protocol_a": {
            "models": models,
            "reference": REFERENCE_ML100K if ds.name == "ml-100k" else {},
            "cold_start_definition": (
                f"test item with fewer than {COLD_MAX_TRAIN} train interactions"
            ),
            "tuning": [{"params": p, "val_NDCG@10": v} for p, v in scored],
        },
        "bytes_per_user": {"mean": float(np.mean(sizes)), "max": int(np.max(sizes))},
    }
    if opts.stream:
        n_events = len(ds.ratings) + len(ds.tags)
        result = prequential(
            ds, tuned, index, encoder,
            user_fraction=opts.stream_user_fraction, max_checks=opts.stream_max_checks,
            progress=progress("protocol B stream", n_events),
        )  # fmt: skip
        doc["protocol_b"] = asdict(result)
    doc["seconds"] = time.perf_counter() - t0
    return doc
