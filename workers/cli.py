"""The `llmrec` command line. Each command group lives in its own module; this wires them."""

from __future__ import annotations

import logging
import sys

import typer
from rich.console import Console

from llmrec.exceptions import BrokerError
from onnx_export.cli import bench_encoder, export_model
from onnx_export.cli_tune import tune_encoder_command
from workers import (
    bench_engine,
    bench_pipeline,
    bench_ranker,
    cli_data,
    cli_demo,
    cli_dlq,
    cli_kafka,
    cli_pipeline,
    cli_privacy,
    cli_ranker,
    logsafety,
)
from workers.cli_eval import eval_command

__all__ = ["app", "main"]

app = typer.Typer(
    name="llmrec",
    help="llmrec: a streaming recommender that understands text.",
    no_args_is_help=True,
    add_completion=False,
)
bench_app = typer.Typer(help="Benchmarks: print figures and write JSON.", no_args_is_help=True)

app.add_typer(cli_kafka.app, name="kafka")
app.add_typer(cli_data.app, name="data")
app.add_typer(cli_dlq.app, name="dlq")
app.add_typer(bench_app, name="bench")

# --- command registration (one line per command; modules own their code) -----------------
app.command("export-model")(export_model)
app.command("tune-encoder")(tune_encoder_command)
app.command("eval")(eval_command)
app.command("train-ranker")(cli_ranker.train_ranker)
bench_app.command("encoder")(bench_encoder)
app.command("worker")(cli_pipeline.worker)
app.command("produce")(cli_pipeline.produce)
app.command("tail")(cli_pipeline.tail)
app.command("forget")(cli_privacy.forget)
app.command("demo")(cli_demo.demo)
bench_app.command("engine")(bench_engine.bench_engine)
bench_app.command("pipeline")(bench_pipeline.bench_pipeline)
bench_app.command("ranker")(bench_ranker.bench_ranker)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logsafety.install()  # rate limit repeats, no payloads in messages or tracebacks


def main() -> None:
    try:
        app()
    except BrokerError as exc:  # unreachable or refusing cluster: one line, no traceback
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(2)
