"""Pipeline commands: `worker`, `produce`, `tail`, `demo` (and `bench pipeline` in bench_pipeline).

These talk to Kafka with plain aiokafka clients; only `worker` imports Faust.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console
from rich.progress import Progress

from llmrec.data import dataset_events, item_records, load_movielens
from llmrec.data.contract import load_contract
from llmrec.exceptions import BrokerError, DatasetError
from workers.cli_data import print_errors
from workers.kafka_conn import DURABLE, client_kwargs
from workers.settings import Settings, get_settings
from workers.topic_admin import assign_all, ensure_topics, read_to_end, topic_names

__all__ = ["produce", "replay", "tail", "worker"]

log = logging.getLogger(__name__)
console = Console(stderr=True)


def worker(
    loglevel: str = typer.Option("info", help="Faust log level."),
) -> None:
    """Start a Faust worker: agents, tables, index replica and the web server (LLMREC_WEB_PORT)."""
    settings = get_settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(ensure_topics(settings))
    except BrokerError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    from faust import Worker

    import workers.agents
    import workers.web  # noqa: F401 - registers the views
    from workers import gcwatch, logsafety
    from workers.app import app

    class SafeLogWorker(Worker):
        # mode's Worker clears the root handlers and builds its own when it starts; this hook
        # runs right after, so the log-safety filter sits on the handlers the worker uses.
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            logsafety.install(logger)

    log.info("worker %s on %s, web :%d", settings.app_id, settings.bootstrap, settings.web_port)
    gcwatch.install()
    SafeLogWorker(app, loglevel=loglevel).execute_from_commandline()


async def replay(
    settings: Settings,
    items: Iterator[dict[str, Any]] | None,
    events: Iterator[dict[str, Any]] | None,
    *,
    speed: float = 0.0,
    key_by_user: bool = True,
    progress: bool = True,
    total: int | None = None,
) -> tuple[int, int]:
    """Send items (all) then events (at `speed` events/s, 0 = as fast as possible)."""
    names = topic_names(settings)
    await ensure_topics(settings)
    producer = AIOKafkaProducer(
        **client_kwargs(settings), linger_ms=5, max_batch_size=256 * 1024, **DURABLE
    )
    await producer.start()
    n_items = n_events = 0
    try:
        for rec in items or ():
            await producer.send(names["items"], orjson.dumps(rec), key=rec["item_id"].encode())
            n_items += 1
        await producer.flush()
        with Progress(console=console, disable=not progress, transient=True) as bar:
            task = bar.add_task("events", total=total)
            started = time.perf_counter()
            for ev in events or ():
                key = ev["user_id"].encode() if key_by_user else None
                await producer.send(names["events"], orjson.dumps(ev), key=key)
                n_events += 1
                if n_events % 100 == 0:
                    bar.update(task, completed=n_events)
                if speed > 0:
                    ahead = n_events / speed - (time.perf_counter() - started)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
            await producer.flush()
            bar.update(task, completed=n_events)
    finally:
        await producer.stop()
    return n_items, n_events


def produce(  # noqa: PLR0917 - one positional per CLI option is typer's style
    dataset: str = typer.Option("ml-latest-small", help="ml-latest-small or ml-100k."),
    items_file: Path | None = typer.Option(  # noqa: B008
        None, "--items", help="Replay this contract items file (JSON lines, .gz) with --events."
    ),
    events_file: Path | None = typer.Option(  # noqa: B008
        None, "--events", help="Replay this contract events file (JSON lines, .gz) with --items."
    ),
    limit: int | None = typer.Option(None, help="At most this many events."),
    item_limit: int | None = typer.Option(None, help="At most this many items."),
    speed: float = typer.Option(0.0, help="Events per second; 0 = as fast as possible."),
    items: bool = typer.Option(True, "--send-items/--no-items", help="Send the catalogue first."),
    events: bool = typer.Option(
        True, "--send-events/--no-events", help="Send the timestamp-ordered events."
    ),
    event: str | None = typer.Option(
        None, help="Send this one JSON event (or item with --to items)."
    ),
    to: str = typer.Option("events", help="Topic role for --event: events or items."),
    unkeyed: bool = typer.Option(False, help="Send events without a key (tests repartitioning)."),
) -> None:
    """Replay a MovieLens dataset (or contract files: --items and --events) into Kafka, or send
    one JSON record."""
    settings = get_settings()
    if event is not None:
        asyncio.run(_send_one(settings, to, event))
        return
    all_items: Iterable[dict[str, Any]]
    all_events: Iterable[dict[str, Any]]
    if items_file is not None or events_file is not None:
        all_items, all_events = _contract_records(items_file, events_file)
        n_all = len(all_events)
    else:
        ds = load_movielens(settings.data_dir, dataset)
        all_items, all_events = item_records(ds), dataset_events(ds)
        n_all = len(ds.ratings) + len(ds.tags)
    it_items = islice(all_items, item_limit) if items else None
    it_events = islice(all_events, limit) if events else None
    total = min(limit or 10**12, n_all)
    n_items, n_events = asyncio.run(
        replay(settings, it_items, it_events, speed=speed, key_by_user=not unkeyed, total=total)
    )
    console.print(f"sent {n_items} items and {n_events} events to {settings.bootstrap}")


def _contract_records(
    items_file: Path | None, events_file: Path | None
) -> tuple[Iterator[dict[str, Any]], list[dict[str, Any]]]:
    """Valid records of contract files: the catalogue, and the events in stable time order."""
    if items_file is None or events_file is None:
        raise typer.BadParameter("--items and --events go together")
    try:
        ds = load_contract(items_file, events_file)
    except DatasetError as exc:
        console.print(f"[red]cannot replay:[/red] {exc}")
        raise typer.Exit(1) from exc
    print_errors(ds.errors)
    log.info("replaying %d items and %d events of %s", len(ds.items), len(ds.events), ds.name)
    items = (r.model_dump(mode="json", exclude_none=True) for r in ds.items.values())
    events = [
        e.model_dump(mode="json", exclude_none=True) for e in sorted(ds.events, key=lambda e: e.ts)
    ]
    return items, events


async def _send_one(settings: Settings, role: str, text: str) -> None:
    names = topic_names(settings)
    if role not in names:
        raise typer.BadParameter(f"unknown topic role {role!r}; one of {sorted(names)}")
    try:
        doc = orjson.loads(text)
        key_field = "item_id" if role == "items" else "user_id"
        key = str(doc.get(key_field, "")).encode() or None if isinstance(doc, dict) else None
    except orjson.JSONDecodeError:
        key = None  # sent as is: the worker will dead-letter it
    await ensure_topics(settings)
    producer = AIOKafkaProducer(**client_kwargs(settings), **DURABLE)
    await producer.start()
    try:
        await producer.send_and_wait(names[role], text.encode(), key=key)
    finally:
        await producer.stop()


async def load_titles(settings: Settings, timeout_s: float = 5.0) -> dict[str, str]:
    """Titles of the catalogue, read from the compacted `items` topic."""
    titles: dict[str, str] = {}
    async for r in read_to_end(client_kwargs(settings), topic_names(settings)["items"], timeout_s):
        if r.value is None or r.key is None:
            continue
        try:
            titles[r.key.decode()] = str(orjson.loads(r.value).get("title", ""))
        except (orjson.JSONDecodeError, AttributeError):
            continue
    return titles


def format_recommendation(doc: dict[str, Any], titles: dict[str, str], width: int = 5) -> str:
    """One recommendation list as readable lines: user, trigger, top items with reasons."""
    lines = [f"[bold]user {doc['user_id']}[/] after {doc.get('trigger_event_id')}"]
    for i, item in enumerate(doc["items"][:width], 1):
        title = titles.get(item["item_id"], item["item_id"])
        reasons = "; ".join(item.get("reasons", []))
        lines.append(f"  {i}. {title} [dim]({item['score']:.3f}) {reasons}[/]")
    return "\n".join(lines)


async def _tail(
    settings: Settings, from_beginning: bool, users: set[str], max_n: int | None
) -> int:
    titles = await load_titles(settings)
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings),
        group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    await assign_all(consumer, topic_names(settings)["recommendations"])
    out = Console()
    shown = 0
    try:
        async for msg in consumer:
            if msg.value is None:
                continue
            doc = orjson.loads(msg.value)
            if users and doc.get("user_id") not in users:
                continue
            out.print(format_recommendation(doc, titles))
            shown += 1
            if max_n is not None and shown >= max_n:
                break
    finally:
        await consumer.stop()
    return shown


def tail(
    from_beginning: bool = typer.Option(False, help="Start at the oldest recommendation."),
    user: list[str] | None = typer.Option(None, help="Only these users (repeatable)."),  # noqa: B008
    max_n: int | None = typer.Option(None, "--max", help="Stop after this many lists."),
) -> None:
    """Pretty-print the recommendations topic with item titles and reasons."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_tail(get_settings(), from_beginning, set(user or ()), max_n))
