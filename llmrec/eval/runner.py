"""One evaluation run: Protocol A (tuned baselines, tuned hybrid, ablations, CIs) and B."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from llmrec.data.contract import ContractDataset
from llmrec.encoder.hashing import HashingEncoder
from llmrec.engine import Engine, EngineConfig
from llmrec.eval.baselines import BASELINES, pop_scores
from llmrec.eval.data import MIN_EVAL_ITEMS, EvalData, build_index, prepare
from llmrec.eval.metrics import Outcomes, per_user, summarise
from llmrec.eval.protocol_a import ModelRun, baseline_run, replay_train
from llmrec.eval.protocol_a import with_params as with_params_config
from llmrec.eval.protocol_b import prequential
from llmrec.eval.ranked import Gathered, gather, linear_run, ranker_run, val_groups
from llmrec.eval.stats import paired_bootstrap
from llmrec.exceptions import DatasetError
from llmrec.index import ItemIndex
from llmrec.ranker.features import FEATURES, GROUPS
from llmrec.ranker.model import Ranker
from llmrec.ranker.train import FitConfig, Group, SampleConfig
from llmrec.types import TextEncoder

__all__ = [
    "DEFAULT_BASELINES",
    "DEFAULT_GRID",
    "EvalOptions",
    "ProgressFactory",
    "run_eval",
]

log = logging.getLogger(__name__)

COLD_MAX_TRAIN = 5
HYBRID = "Hybrid"
LINEAR = "Hybrid, linear fusion"
MIN_GROUPS = 10
# Ranker ablations: (label, feature group of `llmrec.ranker.features.GROUPS` dropped).
ABLATIONS = (
    ("co-visitation", "covisit"), ("review text", "review"), ("text", "text"),
    ("hierarchy", "hierarchy"),
)  # fmt: skip
DEFAULT_BASELINES = (
    "pop", "recentpop", "itemknn", "ease", "als", "transition", "content", "sasrec",
)  # fmt: skip

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

    grid: Sequence[Mapping[str, float]] = DEFAULT_GRID
    baselines: Sequence[str] = DEFAULT_BASELINES
    ablations: bool = True
    stream: bool = True
    stream_user_fraction: float = 0.2
    stream_max_checks: int = 2000
    bootstrap_resamples: int = 2000
    seed: int = 0
    engine: EngineConfig = field(default_factory=EngineConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    fit: FitConfig = field(default_factory=FitConfig)


def _restricted(grid: Sequence[Mapping[str, float]], **fixed: float) -> list[dict[str, float]]:
    """`grid` with some weights fixed, duplicates dropped (order kept)."""
    out: list[dict[str, float]] = []
    for p in grid:
        q = {**p, **fixed}
        if q not in out:
            out.append(q)
    return out


def _model_entry(run: ModelRun, data: EvalData, cold: np.ndarray[Any, Any]) -> dict[str, Any]:
    covered = {i for top in run.test_top10 for i in top}
    c = summarise(run.test.subset(cold))
    return {
        "validation": summarise(run.val),
        "test": summarise(run.test),
        "cold_start": {"users": c["users"], "HR@10": c["HR@10"], "NDCG@10": c["NDCG@10"]},
        "coverage@10": len(covered) / max(len(data.items), 1),
        "params": run.params,
        "seconds": run.seconds,
        "tuning": run.tuning,
    }


def _ci(a: Outcomes, b: Outcomes, resamples: int, seed: int) -> dict[str, dict[str, float]]:
    return {
        f"{m}@10": paired_bootstrap(
            per_user(a, m, 10), per_user(b, m, 10), resamples, seed=seed
        ).as_dict()
        for m in ("HR", "NDCG")
    }


@dataclass(slots=True)
class _Replayed:
    """One train replay: the engine, validation/test candidates and the ranker's groups."""

    engine: Engine
    val: Gathered
    test: Gathered
    train_groups: list[Group]
    valid_groups: list[Group]
    missed: int
    sizes: list[int]


def _replay(
    data: EvalData, opts: EvalOptions, index: ItemIndex, encoder: TextEncoder, *, label: str,
    progress: ProgressFactory,
) -> _Replayed:  # fmt: skip
    engine, states, sampler = replay_train(
        data, opts.engine, index, encoder, sample=opts.sample,
        progress=progress(f"replay ({label})", len(data.train_events)),
    )  # fmt: skip
    advance = progress(f"gather candidates ({label})", 1)
    val, test = gather(engine, data, states)
    advance(1)
    return _Replayed(
        engine, val, test, sampler.groups, val_groups(engine, val), sampler.missed,
        [len(s) for s in states.values()],
    )  # fmt: skip


def _ranker_info(r: _Replayed, ranker: Ranker) -> dict[str, Any]:
    gain = ranker.booster.feature_importance("gain")
    names = ranker.manifest["features"]
    top = sorted(zip(names, gain.tolist(), strict=True), key=lambda t: -t[1])
    total = max(float(sum(gain)), 1e-12)
    sampled = len(r.train_groups) + r.missed
    return {
        "train_groups": len(r.train_groups),
        "validation_groups": len(r.valid_groups),
        "train_target_retrieved": len(r.train_groups) / max(sampled, 1),
        "rounds": ranker.manifest["rounds"],
        "params": ranker.manifest["params"],
        "gain_share": {n: g / total for n, g in top[:12]},
    }


def _hybrid_and_ablations(
    data: EvalData, opts: EvalOptions, index: ItemIndex, encoder: TextEncoder,
    progress: ProgressFactory,
) -> tuple[list[ModelRun], dict[str, Any], list[int]]:  # fmt: skip
    """The hybrid (learned ranker), its linear-fusion fallback and its ablations, each tuned
    on validation exactly like the hybrid; also the ranker's summary and state sizes."""
    r = _replay(data, opts, index, encoder, label=HYBRID, progress=progress)

    def ranked(
        name: str, rep: _Replayed, drop: tuple[str, ...] = (), fit: FitConfig = opts.fit
    ) -> tuple[ModelRun, Ranker]:
        advance = progress(f"ranker {name}", 1)
        out = ranker_run(
            name, rep.engine, rep.val, rep.test, train=rep.train_groups, valid=rep.valid_groups,
            features=[f for f in FEATURES if f not in drop], fit=fit,
        )  # fmt: skip
        advance(1)
        return out

    advance = progress("tune linear fusion", 1)
    lin = linear_run(
        LINEAR, r.engine, r.val, r.test, grid=opts.grid,
        with_params=lambda p: with_params_config(opts.engine, p),
    )  # fmt: skip
    advance(1)
    if len(r.train_groups) < MIN_GROUPS or len(r.valid_groups) < MIN_GROUPS:
        # Too little to learn from: the hybrid is what the engine does without a ranker.
        lin.name = HYBRID
        why = f"{len(r.train_groups)} train / {len(r.valid_groups)} validation queries"
        return [lin], {"skipped": f"too few to train a ranker: {why}"}, r.sizes
    run, ranker = ranked(HYBRID, r)
    runs = [run, lin]
    info = _ranker_info(r, ranker)
    if opts.ablations:
        # Ablations keep the full ranker's LightGBM settings (early stopping still per model).
        fit = replace(opts.fit, grid=(ranker.manifest["params"],))
        runs += [ranked(f"Hybrid − {label}", r, GROUPS[g], fit)[0] for label, g in ABLATIONS]
        hashing = HashingEncoder(encoder.dim)
        hash_index, _ = build_index(data.dataset, data.items, hashing)
        h = _replay(data, opts, hash_index, hashing, label="hashing encoder", progress=progress)
        runs.append(ranked("Hybrid, hashing encoder", h, fit=fit)[0])
    return runs, info, r.sizes


def run_eval(
    ds: ContractDataset, encoder: TextEncoder, options: EvalOptions | None = None,
    progress: ProgressFactory = _no_progress,
) -> dict[str, Any]:  # fmt: skip
    """Run every model on `ds` and return the JSON-ready report document."""
    opts = options or EvalOptions()
    unknown = [b for b in opts.baselines if b.lower() not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; choose from {sorted(BASELINES)}")
    t0 = time.perf_counter()
    data = prepare(ds)
    if len(data.evaluated) == 0:
        raise DatasetError(
            f"{ds.name}: no user has {MIN_EVAL_ITEMS} distinct items; nothing to evaluate"
        )
    advance = progress("encode items", 1)
    index, vectors = build_index(ds, data.items, encoder)
    advance(1)
    cold = pop_scores(data.train.matrix)[data.test_item] < COLD_MAX_TRAIN
    runs: list[ModelRun] = []
    for name in opts.baselines:
        spec = BASELINES[name.lower()]
        runs.append(baseline_run(spec, data, vectors, progress(spec.name, len(spec.grid))))
    hybrids, ranker_info, sizes = _hybrid_and_ablations(data, opts, index, encoder, progress)
    runs += hybrids
    models = {r.name: _model_entry(r, data, cold) for r in runs}
    hybrid = hybrids[0]  # the full hybrid; the rest are its ablations
    linear = next(h for h in hybrids if h.name == LINEAR)
    tuned = with_params_config(opts.engine, linear.params)
    baselines = [r for r in runs if r.name not in {h.name for h in hybrids}]
    best = max(baselines, key=lambda r: summarise(r.test)["NDCG@10"], default=None)
    res, seed = opts.bootstrap_resamples, opts.seed
    doc: dict[str, Any] = {
        "dataset": ds.name,
        "users": len(data.users),
        "evaluated_users": len(data.evaluated),
        "items": len(data.items),
        "counts": data.counts,
        "encoder": getattr(encoder, "info", {"encoder": type(encoder).__name__}),
        "protocol_a": {
            "models": models,
            "cold_start_definition": (
                f"test item with fewer than {COLD_MAX_TRAIN} train interactions"
            ),
            "best_baseline": best.name if best else None,
            "hybrid_minus_baseline": {
                r.name: _ci(hybrid.test, r.test, res, seed) for r in baselines
            },
            "ablations": {
                h.name: _ci(h.test, hybrid.test, res, seed) for h in hybrids if h is not hybrid
            },
            "ranker": ranker_info,
            "linear_fusion_config": asdict(tuned),
        },
        "bytes_per_user": {"mean": float(np.mean(sizes)), "max": int(np.max(sizes))},
    }
    if opts.stream:
        result = prequential(
            ds, tuned, index, encoder,
            user_fraction=opts.stream_user_fraction, max_checks=opts.stream_max_checks,
            progress=progress("protocol B stream", len(ds.events)),
        )  # fmt: skip
        doc["protocol_b"] = asdict(result)
    doc["seconds"] = time.perf_counter() - t0
    return doc
