"""`llmrec bench ranker`: what the learned ranker costs per list, against the linear fusion.

Builds the engine on a built-in dataset, trains a ranker on its stream (or loads one), replays
the stream so users have real states, then ranks the candidates of many different users
(interleaved: every list in a batch is another user's) in batches of 1..256 users. Each batch
is timed three ways in the same run: gathering candidates, the fusion's scoring (the peer), and
the ranker's features + one call of the model (compiled by lleaves where it can be). Prints
the figures and writes JSON.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.console import Console

from llmrec.candidates import Candidates
from llmrec.engine import Engine, EngineConfig
from llmrec.eval.data import build_index
from llmrec.interests import UserState
from llmrec.ranker.model import Ranker
from llmrec.ranker.train import SampleConfig, train_on_stream
from workers.cli_eval import resolve_datasets
from workers.settings import get_settings

__all__ = ["bench_ranker"]

console = Console(stderr=True)
Gathered = list[tuple[UserState, Candidates | None, float]]


def _timed(engine: Engine, batches: list[Gathered], ranker: Ranker | None) -> float:
    engine.ranker = ranker
    t0 = time.perf_counter()
    for b in batches:
        engine.score_batch(b)
    return time.perf_counter() - t0


def _figures(engine: Engine, gathered: Gathered, batch: int, ranker: Ranker) -> dict[str, Any]:
    batches = [gathered[i : i + batch] for i in range(0, len(gathered), batch)]
    lists = sum(1 for _, c, _ in gathered if c is not None)
    cands = sum(len(c.ids) for _, c, _ in gathered if c is not None)
    _timed(engine, batches[:2], ranker)  # warm-up
    fused = _timed(engine, batches, None)
    ranked = _timed(engine, batches, ranker)
    return {
        "batch_users": batch,
        "lists": lists,
        "candidates_per_list": cands / max(lists, 1),
        "ranker_us_per_candidate": 1e6 * ranked / max(cands, 1),
        "ranker_us_per_list": 1e6 * ranked / max(lists, 1),
        "fusion_us_per_list": 1e6 * fused / max(lists, 1),
        "ratio_ranker_to_fusion": ranked / max(fused, 1e-12),
    }


def bench_ranker(
    dataset: str = typer.Option("ml-100k", help="Built-in dataset whose stream is replayed."),
    users: int = typer.Option(1024, help="Distinct users ranked (each list another user's)."),
    max_groups: int = typer.Option(5000, help="Training queries for the benchmark's ranker."),
    out: Path | None = typer.Option(  # noqa: B008
        None, help="JSON output [default: <LLMREC_HOME>/bench-results/ranker.json]."
    ),
) -> None:
    """Time the ranker (features + one model call) per candidate and per list, batches of users."""
    settings = get_settings()
    out = out or settings.bench_dir / "ranker.json"
    (ds,) = resolve_datasets(console, dataset, None, None, name=None, data_dir=settings.data_dir)
    from llmrec.encoder import load_encoder

    encoder = load_encoder(
        settings.model_dir / "all-MiniLM-L6-v2", variant=settings.encoder_variant,
        version=settings.encoder_version,
    )  # fmt: skip
    index, _ = build_index(ds, list(ds.items), encoder)
    engine = Engine(EngineConfig(), index, encoder)
    console.print(f"{ds.name}: training a ranker on {len(ds.events)} events")
    ranker = train_on_stream(engine, ds.events, sample=SampleConfig(max_groups=max_groups))
    states: dict[str, bytes] = {}
    engine = Engine(EngineConfig(), index, encoder)
    engine.replay(sorted(ds.events, key=lambda e: e.ts), states)
    now = max(e.ts for e in ds.events)
    rng = np.random.default_rng(0)
    chosen = rng.choice(sorted(states), size=min(users, len(states)), replace=False)
    t0 = time.perf_counter()
    gathered: Gathered = [(*engine.candidates(states[u], now), now) for u in chosen]
    gather_us = 1e6 * (time.perf_counter() - t0) / len(gathered)
    report = {
        "dataset": ds.name,
        "users": len(gathered),
        "ranker": {"version": ranker.version, "rounds": ranker.manifest["rounds"]},
        "gather_candidates_us_per_list": gather_us,
        "batches": [_figures(engine, gathered, b, ranker) for b in (1, 16, 64, 256)],
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "omp_threads": os.environ.get("OMP_NUM_THREADS"),
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    console.print_json(json.dumps(report))
    console.print(f"wrote {out}")
