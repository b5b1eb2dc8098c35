"""`llmrec bench engine`: the engine alone, in process, under many users' interleaved events.

What one list costs without Kafka or Faust, and the lists themselves as one hash, so that a
change meant to be faster only can be checked to answer exactly as before. Per catalogue (the
first N ml-latest-small movies, encoded as the worker does):
1. warm-up: `--warm` interleaved events folded into users' states and the shared statistics, so
   that users have the histories they have in `bench pipeline`'s later runs (a full recent
   window, a thousand seen items);
2. then, for each micro-batch size, the next `--events` events from the same states: each batch
   folds its users' events (one list per user, as the worker answers) and recommends for them
   in one call; the statistics stay as the warm-up left them, so that every batch size answers
   the same requests. Wall ms per event by stage (fold, retrieve, rank, rerank), lists/s, and
   the sha256 of every list's ids, scores and reasons.
`--candidate-scale` times the same with every source's candidate budget scaled
(`RetrievalConfig.scaled`): what a list costs with fewer candidates (`llmrec eval
--candidate-scale` gives what it answers). Compare hashes of runs with the same `--items`: a
catalogue encoded after another reuses the encoder's cache, so its texts are batched
differently, and int8 vectors vary slightly with their batch-mates (activations are quantised
per batch).
"""

from __future__ import annotations

import hashlib
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console

from llmrec.candidates import RetrievalConfig
from llmrec.data import item_records, load_movielens
from llmrec.data.contract import ContractDataset
from llmrec.engine import Engine, EngineConfig
from llmrec.eval.data import build_index
from llmrec.events import Event, ItemRecord
from llmrec.ranker.store import load_current
from workers.agents.runtime import load_text_encoder
from workers.bench_pipeline import resolve_ranker, traffic
from workers.settings import get_settings

__all__ = ["bench_engine"]

console = Console(stderr=True)
_STAGES = ("fold", "retrieve", "rank", "rerank")


def replay_batches(
    engine: Engine, states: dict[str, bytes], events: Sequence[Event], batch: int, k: int
) -> dict[str, Any]:
    """Answer `events` in micro-batches of `batch`, as the worker does, from copies of
    `states`; the statistics are not updated. Wall seconds by stage, lists, candidates, and
    the sha256 of the lists."""
    answered: dict[str, bytes | None] = dict(states)
    spent = dict.fromkeys(_STAGES, 0.0)
    digest = hashlib.sha256()
    lists = candidates = 0
    for lo in range(0, len(events), batch):
        t0 = time.perf_counter()
        runs: dict[str, list[Event]] = {}
        for ev in events[lo : lo + batch]:
            runs.setdefault(ev.user_id, []).append(ev)
        for user, run in runs.items():
            state = answered.get(user)
            for ev in run:
                state, _ = engine.observe_update(state, ev)
            answered[user] = state
        t1 = time.perf_counter()
        gathered = engine.gather([(answered[u], run[-1].ts, ()) for u, run in runs.items()])
        t2 = time.perf_counter()
        scores = engine.score_batch(gathered)
        t3 = time.perf_counter()
        answers = engine.lists(gathered, scores, k)
        t4 = time.perf_counter()
        for stage, seconds in zip(_STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            spent[stage] += seconds
        for items in answers:
            digest.update(orjson.dumps([(r.item_id, r.score, r.reasons) for r in items]))
        lists += len(answers)
        candidates += sum(len(c.ids) for _, c, _ in gathered if c is not None)
    return {
        "seconds": spent,
        "lists": lists,
        "candidates": candidates,
        "sha256": digest.hexdigest(),
    }


def _figures(run: dict[str, Any], events: int, batch: int) -> dict[str, Any]:
    total = sum(run["seconds"].values())
    return {
        "batch_events": batch,
        "events": events,
        "lists_per_event": round(run["lists"] / max(events, 1), 3),
        "candidates_per_list": round(run["candidates"] / max(run["lists"], 1), 1),
        "ms_per_event": {s: round(1e3 * v / max(events, 1), 3) for s, v in run["seconds"].items()},
        "total_ms_per_event": round(1e3 * total / max(events, 1), 3),
        "lists_per_s": round(run["lists"] / total, 1) if total else None,
        "sha256": run["sha256"],
    }


def bench_engine(  # noqa: PLR0917 - one positional per CLI option is typer's style
    items: str = typer.Option("2000,10000", help="Catalogue sizes, comma-separated."),
    events: int = typer.Option(3000, help="Events answered at each micro-batch size."),
    warm: int = typer.Option(30_000, help="Events folded first, so users have histories."),
    batches: str = typer.Option("1,16,64", help="Micro-batch sizes (events), comma-separated."),
    candidate_scale: str = typer.Option(
        "1", help="Candidate budgets, as factors of the defaults, comma-separated."
    ),
    ranker: str = typer.Option(
        "auto", help="auto (installed, else trained here), none, or a ranker root."
    ),
    encoder: str = typer.Option("onnx", help="onnx or hashing (no model artifacts needed)."),
    out: Path | None = typer.Option(  # noqa: B008
        None, help="JSON output [default: <LLMREC_HOME>/bench-results/engine.json]."
    ),
) -> None:
    """Time the engine in process on interleaved users; print figures and the lists' hash."""
    base = get_settings()
    out = out or base.bench_dir / "engine.json"
    settings = base.model_copy(update={"encoder_backend": encoder})
    enc, _ = load_text_encoder(settings)
    ds = load_movielens(base.data_dir, "ml-latest-small")
    with tempfile.TemporaryDirectory(prefix="llmrec-bench-") as tmp:
        root = resolve_ranker(base, ranker, Path(tmp))
        model = load_current(root) if root is not None else None
    result: dict[str, Any] = {"ranker": model.version if model else None, "catalogues": []}
    for n_items in (int(x) for x in items.split(",")):
        records = [ItemRecord.model_validate(r) for r in islice(item_records(ds), n_items)]
        ids = [r.item_id for r in records]
        # the texts the worker encodes from these records on the items topic
        catalogue = ContractDataset(ds.name, {r.item_id: r for r in records}, [])
        index, _ = build_index(catalogue, ids, enc)
        stream = [
            Event.model_validate(e) for e in traffic(ds, set(ids), "interleaved", warm + events)
        ]
        runs = []
        for scale in (float(x) for x in candidate_scale.split(",")):
            engine = Engine(EngineConfig(retrieval=RetrievalConfig().scaled(scale)), index, enc)
            engine.ranker = model
            states: dict[str, bytes] = {}
            engine.replay(stream[:warm], states)
            for batch in (int(x) for x in batches.split(",")):
                figures = {
                    "candidate_scale": scale,
                    **_figures(
                        replay_batches(engine, states, stream[warm:], batch, base.recommend_k),
                        len(stream) - warm, batch,
                    ),
                }  # fmt: skip
                console.print(f"{len(ids)} items, micro-batches of {batch}: {figures}")
                runs.append(figures)
        result["catalogues"].append({"items": len(ids), "warm_events": warm, "runs": runs})
    result["machine"] = {
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "omp_threads": os.environ.get("OMP_NUM_THREADS"), "encoder": encoder,
    }  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    console.print_json(orjson.dumps(result).decode())
    console.print(f"wrote {out}")
