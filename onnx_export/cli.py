"""Typer-compatible commands: `llmrec export-model` and `llmrec bench encoder`."""

from __future__ import annotations

import logging
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from llmrec.encoder.artifacts import VARIANTS
from llmrec.exceptions import ModelArtifactError
from onnx_export.bench import bench_encoder
from onnx_export.deps import MissingExportDependencyError
from onnx_export.export import MODEL_NAME
from onnx_export.pipeline import ExportOptions, run_export
from workers.settings import get_settings

__all__ = ["Variant", "bench_encoder", "export_model"]

log = logging.getLogger(__name__)
_console = Console(stderr=True)


class Variant(StrEnum):
    """Which artifact to build; `all` builds every variant."""

    fp32 = "fp32"
    opt = "opt"
    int8 = "int8"
    fp16 = "fp16"
    all = "all"


def _default_out() -> Path:
    return get_settings().model_dir / MODEL_NAME


def _default_data() -> Path:
    return get_settings().data_dir


def export_model(
    variant: Annotated[Variant, typer.Option(help="Artifact to build.")] = Variant.all,
    out: Annotated[
        Path | None, typer.Option(help="Model root [default: <model_dir>/all-MiniLM-L6-v2].")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="MovieLens data folder [default: settings data_dir].")
    ] = None,
    force: Annotated[bool, typer.Option(help="Rebuild even when valid artifacts exist.")] = False,
    retrieval_texts: Annotated[
        int, typer.Option(help="MovieLens texts in the int8 retrieval check (0 = all).")
    ] = 3000,
) -> None:
    """Export all-MiniLM-L6-v2 to ONNX (fp32, opt, int8, fp16), gate its quality, manifest it."""
    variants = VARIANTS if variant is Variant.all else (variant.value,)
    options = ExportOptions(
        out=out or _default_out(),
        data_dir=data_dir or _default_data(),
        variants=variants,
        force=force,
        retrieval_limit=retrieval_texts or None,
    )
    started = time.perf_counter()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    try:
        with Progress(*columns, console=_console, transient=True) as progress:
            task = progress.add_task("export", total=None)
            result = run_export(options, step=lambda msg: progress.update(task, description=msg))
    except (ModelArtifactError, MissingExportDependencyError, FileNotFoundError) as exc:
        _console.print(f"[bold red]export-model failed:[/] {exc}")
        raise typer.Exit(code=1) from exc
    took = time.perf_counter() - started
    _console.print(
        f"[green]{MODEL_NAME} {result.version}[/] in {options.out}: "
        f"built {result.built or 'nothing'}, skipped {result.skipped or 'nothing'} "
        f"({took:.1f}s)"
    )
    for name, figures in result.parity.items():
        _console.print(f"  {name}: {figures}")
