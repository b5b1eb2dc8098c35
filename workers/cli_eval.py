"""`llmrec eval`: any contract dataset through the Engine and baselines; reports in reports/."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, NoReturn

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from llmrec.candidates import RetrievalConfig
from llmrec.data.builtin import BUILTIN, builtin_dataset
from llmrec.data.contract import ContractDataset, load_contract
from llmrec.engine import EngineConfig
from llmrec.eval import DEFAULT_BASELINES, EvalOptions, run_eval, write_report
from llmrec.eval.baselines import BASELINES
from llmrec.exceptions import DatasetError, EncoderError
from llmrec.ranker.train import FitConfig, SampleConfig
from llmrec.types import TextEncoder
from workers.cli_data import print_errors
from workers.eval_kafka import KafkaEvalConfig, eval_through_kafka
from workers.settings import get_settings

__all__ = ["eval_command", "resolve_datasets"]

log = logging.getLogger(__name__)


def _encoder(model_dir: Path, variant: str, version: str | None) -> TextEncoder:
    from llmrec.encoder import load_encoder

    return load_encoder(model_dir / "all-MiniLM-L6-v2", variant=variant, version=version)


def resolve_datasets(
    console: Console, dataset: str | None, items: Path | None, events: Path | None,
    *, name: str | None, data_dir: Path,
) -> list[ContractDataset]:  # fmt: skip
    """The datasets named by --dataset (a built-in, `all` or none: every built-in) or by
    --items/--events (your files); invalid records are reported and skipped."""
    if (items is None) != (events is None):
        raise typer.BadParameter("--items and --events go together")
    if items is not None and events is not None:
        if dataset is not None:
            raise typer.BadParameter("give --dataset or --items/--events, not both")
        names: list[str | None] = [None]
    else:
        names = list(BUILTIN) if dataset in {None, "all"} else [dataset]
    out = []
    for n in names:
        ds = (
            load_contract(items, events, name)  # type: ignore[arg-type]
            if n is None
            else builtin_dataset(data_dir, n)
        )
        if ds.errors:
            console.print(f"{ds.name}: invalid records are skipped and counted in the report")
            print_errors(ds.errors)
        out.append(ds)
    return out


def _baselines(spec: str) -> tuple[str, ...]:
    chosen = tuple(b.strip().lower() for b in spec.split(",") if b.strip())
    if chosen == ("none",):
        return ()
    unknown = [b for b in chosen if b not in BASELINES]
    if unknown:
        raise typer.BadParameter(f"unknown baselines {unknown}; choose from {sorted(BASELINES)}")
    return chosen


def eval_command(
    dataset: Annotated[
        str | None, typer.Option(help=f"Built-in dataset: {', '.join(BUILTIN)} or all.")
    ] = None,
    *,
    items: Annotated[Path | None, typer.Option(help="Items JSON lines (.gz ok).")] = None,
    events: Annotated[Path | None, typer.Option(help="Events JSON lines (.gz ok).")] = None,
    name: Annotated[str | None, typer.Option(help="Report name for --items/--events.")] = None,
    baselines: Annotated[
        str, typer.Option(help=f"Comma-separated baselines, or none. [{','.join(BASELINES)}]")
    ] = ",".join(DEFAULT_BASELINES),
    ablations: Annotated[bool, typer.Option(help="Run the hybrid's ablations.")] = True,
    data_dir: Annotated[Path | None, typer.Option(help="Datasets folder (settings).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Reports folder [default: <LLMREC_HOME>/reports].")
    ] = None,
    variant: Annotated[str, typer.Option(help="Encoder variant: int8, fp16, fp32.")] = "int8",
    encoder_version: Annotated[
        str | None,
        typer.Option(help="Encoder version folder (e.g. a tune-encoder one) [default: current]."),
    ] = None,
    stream: Annotated[bool, typer.Option(help="Also run Protocol B (prequential).")] = True,
    stream_checks: Annotated[int, typer.Option(help="Events checked in Protocol B.")] = 2000,
    quick: Annotated[bool, typer.Option(help="Tune over a 2-point grid (smoke runs).")] = False,
    candidate_scale: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="Every source's candidate budget times this; not with --through-kafka.",
        ),
    ] = 1.0,
    through_kafka: Annotated[
        bool,
        typer.Option(
            help="Protocol B through a real broker and --workers worker processes, scored on "
            "the published lists, next to the offline Protocol B (no Protocol A)."
        ),
    ] = False,
    workers: Annotated[int, typer.Option(min=1, help="Workers for --through-kafka.")] = 1,
    rate: Annotated[float, typer.Option(min=1, help="Events/s sent by --through-kafka.")] = 300.0,
    partitions: Annotated[int, typer.Option(min=1, help="Partitions for --through-kafka.")] = 4,
) -> None:
    """Evaluate the hybrid against tuned baselines (Protocol A and B) on any contract dataset.

    Without options it runs every built-in dataset; --items/--events read your own files in the
    event contract (see the README).
    """
    settings = get_settings()
    out = out or settings.reports_dir
    console = Console()
    try:
        datasets = resolve_datasets(
            console, dataset, items, events, name=name, data_dir=data_dir or settings.data_dir
        )
    except DatasetError as exc:
        _refuse(console, exc)
    opts = EvalOptions(
        baselines=_baselines(baselines), ablations=ablations, stream=stream,
        stream_max_checks=stream_checks,
        engine=EngineConfig(retrieval=RetrievalConfig().scaled(candidate_scale)),
    )  # fmt: skip
    if quick:
        opts = replace(
            opts, grid=tuple(opts.grid[-2:]), sample=SampleConfig(max_groups=2000),
            fit=FitConfig(grid=FitConfig().grid[:1], max_rounds=50),
        )  # fmt: skip
    try:
        encoder = _encoder(settings.model_dir, variant, encoder_version or settings.encoder_version)
    except EncoderError as exc:  # no model artifacts, or no onnxruntime (llmrec[cpu] / [gpu])
        _refuse(console, exc)
    if through_kafka:
        config = KafkaEvalConfig(
            workers=workers, partitions=partitions, rate=rate, variant=variant,
            encoder_version=encoder_version or settings.encoder_version,
            max_checks=stream_checks,
        )  # fmt: skip
        for ds in datasets:
            _through_kafka(console, ds, encoder, config, out)
        return
    for ds in datasets:
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console,
        ) as bars:  # fmt: skip
            try:
                doc = run_eval(ds, encoder, opts, progress=_tasks(bars, ds.name))
            except DatasetError as exc:
                _refuse(console, exc)
        paths = write_report(doc, out / ds.name)
        _print(console, doc)
        console.print(f"report: {', '.join(str(p) for p in paths)}")


def _through_kafka(
    console: Console, ds: ContractDataset, encoder: TextEncoder, config: KafkaEvalConfig,
    out: Path,
) -> None:  # fmt: skip
    doc = eval_through_kafka(ds, encoder, get_settings(), config)
    path = out / ds.name / f"through-kafka-{config.workers}w.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    ci = doc["difference_ci95"]
    console.print(
        f"{ds.name}, {config.workers} worker(s) at {config.rate:.0f} events/s, "
        f"{doc['events_answered']} of {doc['events']} events answered. HR@10 of the list "
        f"published before each checked event: through Kafka {doc['through_kafka_hr_paired']:.4f}"
        f", offline replay {doc['offline_published_hr_paired']:.4f} on the same "
        f"{doc['paired_checks']} checks, difference {ci['diff']:+.4f} [{ci['low']:+.4f}, "
        f"{ci['high']:+.4f}]. Offline Protocol B (fresh list at each event): "
        f"{doc['offline_fresh_hr']:.4f} over {doc['checked']}."
    )
    console.print(f"report: {path}")


def _refuse(console: Console, exc: DatasetError | EncoderError) -> NoReturn:
    """A dataset or an encoder that cannot be used: say why, exit 2 (no traceback)."""
    console.print(f"[red]error:[/] {escape(str(exc))}")
    raise typer.Exit(2) from exc


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
    for model, m in a["models"].items():
        t = m["test"]
        table.add_row(
            model, f"{t['HR@10']:.4f}", f"{t['NDCG@10']:.4f}", f"{t['MRR']:.4f}",
            f"{m['cold_start']['HR@10']:.4f}", f"{m['coverage@10']:.3f}",
        )  # fmt: skip
    console.print(table)
    best = a["best_baseline"]
    if best:
        ci = a["hybrid_minus_baseline"][best]
        console.print(
            f"Hybrid - {best} (best baseline): NDCG@10 {ci['NDCG@10']['diff']:+.4f} "
            f"[{ci['NDCG@10']['low']:+.4f}, {ci['NDCG@10']['high']:+.4f}], HR@10 "
            f"{ci['HR@10']['diff']:+.4f} [{ci['HR@10']['low']:+.4f}, {ci['HR@10']['high']:+.4f}]"
        )
    b = doc.get("protocol_b")
    if isinstance(b, dict):
        console.print(
            f"Protocol B: {b['checked']} events, HR@{b['k']} hybrid {b['hybrid_hr']:.4f}, "
            f"popular-now {b['popular_hr']:.4f}"
        )
