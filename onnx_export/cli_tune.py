"""Typer-compatible command `llmrec tune-encoder` (code in `onnx_export.tune`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from llmrec.data.builtin import BUILTIN
from llmrec.encoder.artifacts import VARIANTS
from llmrec.exceptions import DatasetError, ModelArtifactError
from onnx_export.deps import MissingExportDependencyError
from onnx_export.export import MODEL_NAME
from onnx_export.pipeline import ExportOptions
from onnx_export.tune import DEFAULT_BATCH_SIZE, DEFAULT_MAX_STEPS, TuneOptions, tune_encoder
from workers.cli_eval import resolve_datasets
from workers.settings import get_settings

__all__ = ["tune_encoder_command"]

_console = Console(stderr=True)


def tune_encoder_command(
    dataset: Annotated[
        str | None, typer.Option(help=f"Built-in dataset: {', '.join(BUILTIN)}.")
    ] = None,
    *,
    items: Annotated[Path | None, typer.Option(help="Items JSON lines (.gz ok).")] = None,
    events: Annotated[Path | None, typer.Option(help="Events JSON lines (.gz ok).")] = None,
    name: Annotated[str | None, typer.Option(help="Dataset name for --items/--events.")] = None,
    max_steps: Annotated[
        int, typer.Option(help="Optimiser steps (epochs repeat).")
    ] = DEFAULT_MAX_STEPS,
    batch_size: Annotated[
        int, typer.Option(help="Pairs per step (in-batch negatives).")
    ] = DEFAULT_BATCH_SIZE,
    learning_rate: Annotated[float, typer.Option(help="AdamW peak learning rate.")] = 2e-5,
    seed: Annotated[int, typer.Option(help="Shuffle and torch seed.")] = 13,
    threads: Annotated[
        int, typer.Option(help="torch CPU threads: 1 suits a shared host, more an idle one.")
    ] = 1,
    make_current: Annotated[
        bool, typer.Option(help="Point `current` at the tuned version (serving switches to it).")
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Model root [default: <model_dir>/all-MiniLM-L6-v2].")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Datasets folder (settings).")] = None,
    retrieval_texts: Annotated[
        int, typer.Option(help="MovieLens texts in the int8 retrieval check (0 = all).")
    ] = 3000,
) -> None:
    """Fine-tune all-MiniLM-L6-v2 on a dataset's train split and export it as a new version.

    Pairs: (item, next engaged item) per user and (review, item). Only the evaluation's train
    split is read. The new version is gated like `export-model`; `current` stays unless
    --make-current.
    """
    if dataset is None and items is None:
        raise typer.BadParameter("give --dataset NAME or --items/--events")
    if dataset == "all":
        raise typer.BadParameter("tune on one dataset: --dataset takes a single name")
    settings = get_settings()
    folder = data_dir or settings.data_dir
    export = ExportOptions(
        out=out or settings.model_dir / MODEL_NAME,
        data_dir=folder,
        variants=VARIANTS,
        retrieval_limit=retrieval_texts or None,
        make_current=make_current,
    )
    started = time.perf_counter()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    try:
        (ds,) = resolve_datasets(_console, dataset, items, events, name=name, data_dir=folder)
        options = TuneOptions(
            max_steps=max_steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
            threads=threads,
        )  # fmt: skip
        with Progress(*columns, console=_console, transient=True) as progress:
            task = progress.add_task("tune", total=None)
            result, record = tune_encoder(
                ds, export, options, step=lambda msg: progress.update(task, description=msg)
            )
    except (
        DatasetError, ModelArtifactError, MissingExportDependencyError, FileNotFoundError,
        ValueError,
    ) as exc:  # fmt: skip
        _console.print(f"[bold red]tune-encoder failed:[/] {exc}")
        raise typer.Exit(code=1) from exc
    took = time.perf_counter() - started
    data = record["data"]
    _console.print(
        f"pairs {data['pairs']} (sha256 {data['pairs_sha256'][:12]}), {record['steps']} steps "
        f"in {record['train_seconds']}s on {record['device']}, loss {record['loss_first']} -> "
        f"{record['loss_last']}"
    )
    for variant, figures in result.parity.items():
        _console.print(f"  {variant}: {figures}")
    _console.print(f"built {result.built or 'nothing'} in {took:.1f}s")
    if make_current:
        _console.print(f"{MODEL_NAME} {result.version} is now current")
    else:
        _console.print(
            "`current` unchanged: select this version with LLMREC_ENCODER_VERSION or "
            "`llmrec eval --encoder-version`, or tune again with --make-current"
        )
    typer.echo(result.version)  # stdout: the one line a script needs
