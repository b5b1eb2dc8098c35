"""`llmrec data convert movielens | amazon2018`: a source's files into contract JSON lines.

Each command writes `OUT/items.jsonl.gz` and `OUT/events.jsonl.gz` (the files `llmrec produce
--items --events` replays), validated by the contract first, and prints what it read, skipped
and deduplicated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from llmrec.data.amazon2018 import convert_amazon2018
from llmrec.data.contract import LineError, write_jsonl
from llmrec.data.convert import Conversion, convert_movielens
from llmrec.exceptions import DatasetError
from workers.settings import get_settings

__all__ = ["EVENTS_FILE", "ITEMS_FILE", "app", "print_errors"]

ITEMS_FILE = "items.jsonl.gz"
EVENTS_FILE = "events.jsonl.gz"

app = typer.Typer(help="Datasets in the event contract.", no_args_is_help=True)
convert_app = typer.Typer(
    help=f"Convert a source into OUT/{ITEMS_FILE} and OUT/{EVENTS_FILE}.", no_args_is_help=True
)
app.add_typer(convert_app, name="convert")
console = Console(stderr=True)

OutDir = Annotated[Path, typer.Option(help=f"Folder for {ITEMS_FILE} and {EVENTS_FILE}.")]


@convert_app.command("movielens")
def movielens(
    dataset: Annotated[str, typer.Option(help="ml-100k or ml-latest-small.")] = "ml-latest-small",
    *,
    data_dir: Annotated[Path | None, typer.Option(help="Datasets folder (settings).")] = None,
    out: OutDir,
) -> None:
    """MovieLens, mapped as `llmrec produce` replays it (ratings by value, tags as reviews)."""
    root = data_dir or get_settings().data_dir
    _write(lambda: convert_movielens(root, dataset), dataset, out)


@convert_app.command("amazon2018")
def amazon2018(
    reviews: Annotated[Path | None, typer.Option(help="Reviews JSON lines (.json.gz).")] = None,
    *,
    meta: Annotated[Path | None, typer.Option(help="Metadata JSON lines (.json.gz).")] = None,
    ratings: Annotated[
        Path | None, typer.Option(help="Ratings CSV without header: item,user,rating,ts.")
    ] = None,
    min_user_items: Annotated[
        int, typer.Option(min=1, help="Keep users with at least this many distinct items.")
    ] = 1,
    all_meta_items: Annotated[
        bool, typer.Option(help="Also keep metadata items no kept event names.")
    ] = False,
    out: OutDir,
) -> None:
    """Amazon Review Data 2018: reviews and/or ratings (one at least), plus metadata."""
    if reviews is None and ratings is None:
        raise typer.BadParameter("give --reviews, --ratings or both")
    name = (reviews or ratings or Path("amazon2018")).name.split(".")[0]
    _write(
        lambda: convert_amazon2018(
            reviews=reviews,
            meta=meta,
            ratings=ratings,
            min_user_items=min_user_items,
            all_meta_items=all_meta_items,
        ),
        name,
        out,
    )


def print_errors(errors: Sequence[LineError], first: int = 5) -> None:
    """Say how many records broke the contract and show the first few."""
    if not errors:
        return
    shown = min(first, len(errors))
    console.print(f"[yellow]{len(errors)} line errors[/yellow]; the first {shown}:")
    for err in errors[:first]:
        console.print(f"  {err}", markup=False, highlight=False)


def _write(convert: Callable[[], Conversion], name: str, out: Path) -> None:
    try:
        conversion = convert()
        ds = conversion.dataset(name)
    except DatasetError as exc:
        console.print(f"[red]cannot convert {name}:[/red] {exc}")
        raise typer.Exit(1) from exc
    items = (r.model_dump(mode="json", exclude_defaults=True) for r in ds.items.values())
    events = (e.model_dump(mode="json", exclude_defaults=True) for e in ds.events)
    n_items = write_jsonl(out / ITEMS_FILE, items)
    n_events = write_jsonl(out / EVENTS_FILE, events)
    console.print(f"{name}: wrote {n_items} items to {out / ITEMS_FILE}")
    console.print(f"{name}: wrote {n_events} events to {out / EVENTS_FILE}")
    console.print(", ".join(f"{k} {v}" for k, v in sorted(conversion.counts.items())))
    print_errors(ds.errors)
