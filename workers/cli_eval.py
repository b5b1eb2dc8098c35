"""`llmrec eval`: replay a MovieLens dataset through the Engine and write a report to reports/."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from llmrec.data.movielens import DATASETS, load_movielens
from llmrec.eval import EvalOptions, run_eval, write_report
from llmrec.types import TextEncoder
from workers.settings import REPO_ROOT, get_settings

__all__ = ["eval_command"]

log = logging.getLogger(__name__)


def _encoder(model_dir: Path, variant: str) -> TextEncoder:
    from llmrec.encoder import load_encoder

    return load_encoder(model_dir / "all-MiniLM-L6-v2", variant=variant)


def eval_command(
    dataset: Annotated[str, typer.Option(help="ml-100k, ml-latest-small, or all.")] = "ml-100k",
    *,
    data_dir: Annotated[Path | None, typer.Option(help="Datasets folder (settings).")] = None,
    out: Annotated[Path, typer.Option(help="Where reports are written.")] = REPO_ROOT / "reports",
    variant: Annotated[str, typer.Option(help="Encoder variant: int8, fp16, fp32.")] = "int8",
    stream: Annotated[bool, typer.Option(help="Also run Protocol B (prequential).")] = True,
    stream_checks: Annotated[int, typer.Option(help="Events checked in Protocol B.")] = 2000,
    quick: Annotated[bool, typer.Option(help="Tune over a 2-point grid (smoke runs).")] = False,
) -> None:
    """Evaluate Pop, ItemKNN, EASE, content-only and the hybrid (Protocol A and B)."""
    settings = get_settings()
    root = data_dir or settings.data_dir
    encoder = _encoder(settings.model_dir, variant)
    console = Console()
    names = list(DATASETS) if dataset == "all" else [dataset]
    base = EvalOptions(stream=stream, stream_max_checks=stream_checks)
    if quick:
        base = EvalOptions(stream=stream, stream_max_checks=stream_checks, grid=base.grid[-2:])
    for name in names:
        ds = load_movielens(root, name)
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console,
        ) as bars:  # fmt: skip
            doc = run_eval(ds, encoder, base, progress=_tasks(bars, name))
        paths = write_report(doc, out / name)
        _print(console, doc)
        console.print(f"report: {', '.join(str(p) for p in paths)}")


def _tasks(bars: Progress, prefix: str) -> Callable[[str, int | None], Callable[[int], None]]:
    """A ProgressFactory that adds one rich progress bar per task."""

    def task(description: str, total: int | None) -> Callable[[int], None]:
        tid = bars.add_task(f"{prefix}: {description}", total=total)
        return lambda n: bars.advance(tid, n)

    return task


def _print(console: Console, doc: dict[str, object]) -> None:
    a = doc["protocol_a"]
    assert isinstance(a, dict)
    table = Table(title=f"{doc['dataset']} - Protocol A (test)")
    for col in ("model", "HR@10", "NDCG@10", "MRR", "cold HR@10", "coverage@10"):
        table.add_column(col)
    for name, m in a["models"].items():
        t = m["test"]
        table.add_row(
            name, f"{t['HR@10']:.4f}", f"{t['NDCG@10']:.4f}", f"{t['MRR']:.4f}",
            f"{m['cold_start']['HR@10']:.4f}", f"{m['coverage@10']:.3f}",
        )  # fmt: skip
    console.print(table)
    b = doc.get("protocol_b")
    if isinstance(b, dict):
        console.print(
            f"Protocol B: {b['checked']} events, HR@{b['k']} hybrid {b['hybrid_hr']:.4f}, "
            f"popular-now {b['popular_hr']:.4f}"
        )
