"""`llmrec train-ranker`: learn the LightGBM ranker from a replayed stream and publish it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from llmrec.engine import Engine, EngineConfig
from llmrec.eval.data import build_index
from llmrec.exceptions import DatasetError
from llmrec.ranker.store import publish
from llmrec.ranker.train import FitConfig, SampleConfig, train_on_stream
from workers.cli_eval import resolve_datasets
from workers.settings import get_settings

__all__ = ["train_ranker"]


def train_ranker(  # noqa: PLR0917 - one positional per CLI option is typer's style
    dataset: Annotated[
        str | None, typer.Option(help="A built-in dataset (see `llmrec eval --help`).")
    ] = None,
    items: Annotated[Path | None, typer.Option(help="Catalogue: JSON lines of items.")] = None,
    events: Annotated[Path | None, typer.Option(help="Events: JSON lines of events.")] = None,
    name: Annotated[str | None, typer.Option(help="Name recorded in the manifest.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Ranker root [default: <model_dir>/ranker].")
    ] = None,
    max_groups: Annotated[int, typer.Option(min=10, help="Training queries to sample.")] = 5_000,
    threads: Annotated[
        int, typer.Option(min=0, help="LightGBM threads (0: every core; 1 on a shared host).")
    ] = 0,
    encoder_version: Annotated[
        str | None, typer.Option(help="Encoder version [default: settings, else current].")
    ] = None,
) -> None:
    """Replay the events in time order through the engine; for sampled events, the candidates
    retrieved just before are a query labelled by the item engaged with; fit LambdaMART on the
    earlier 80 % of queries, early-stop on the latest 20 %; publish as the current ranker."""
    console = Console(stderr=True)
    settings = get_settings()
    if dataset == "all":
        raise typer.BadParameter("train on one dataset (or your --items/--events)")
    try:
        (ds,) = resolve_datasets(
            console, dataset, items, events, name=name, data_dir=settings.data_dir
        )
    except DatasetError as exc:
        console.print(f"[bold red]{exc}[/]")
        raise typer.Exit(code=2) from exc
    t0 = time.perf_counter()
    from llmrec.encoder import load_encoder  # onnxruntime: only once the arguments are good

    encoder = load_encoder(
        settings.model_dir / "all-MiniLM-L6-v2", variant=settings.encoder_variant,
        version=encoder_version or settings.encoder_version,
    )  # fmt: skip
    index, _ = build_index(ds, list(ds.items), encoder)
    titles = {i: r.title for i, r in ds.items.items()}
    engine = Engine(EngineConfig(), index, encoder, titles=titles)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console) as bars:
        task = bars.add_task(f"{ds.name}: replay", total=len(ds.events))
        ranker = train_on_stream(
            engine, ds.events, sample=SampleConfig(max_groups=max_groups),
            fit=FitConfig(threads=threads),
            progress=lambda n: bars.advance(task, n),
            data=ds.name, data_sha256=ds.fingerprint(),
            encoder={k: str(v) for k, v in dict(encoder.info).items()},
        )  # fmt: skip
    ranker.manifest["seconds"] = time.perf_counter() - t0
    root = out or settings.model_dir / "ranker"
    folder = publish(ranker, root)
    m = ranker.manifest
    console.print(
        f"[green]ranker {ranker.version}[/] -> {folder} (current): {m['train_groups']} train / "
        f"{m['val_groups']} validation queries, {m['rounds']} rounds, validation NDCG@10 "
        f"{m['val_ndcg_at_10']:.4f}, target retrieved {m['target_retrieved']:.1%}, "
        f"{m['seconds']:.0f} s"
    )
