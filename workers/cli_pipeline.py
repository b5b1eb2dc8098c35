"""Pipeline commands: `worker`, `produce`, `tail`, `demo` (and `bench pipeline` in bench_pipeline).

These talk to Kafka with plain aiokafka clients; only `worker` imports Faust. `produce` checks
each record as the worker will (`check_record`) and refuses a bad one with its reasons; every
command first waits up to `--connect-timeout` for the cluster, then says in one line why not.
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
from rich.markup import escape
from rich.progress import Progress

from llmrec.data import dataset_events, item_records, load_movielens
from llmrec.data.contract import load_contract
from llmrec.events import future_skew, parse_item, parse_user_record
from llmrec.exceptions import BrokerError, DatasetError, InvalidRecordError
from workers.cli_data import print_errors
from workers.kafka_conn import DURABLE, client_kwargs, probe
from workers.settings import Settings, get_settings
from workers.topic_admin import assign_all, ensure_topics, read_to_end, topic_names

__all__ = [
    "CONNECT_TIMEOUT",
    "check_record",
    "problem_lines",
    "produce",
    "replay",
    "tail",
    "worker",
]

log = logging.getLogger(__name__)
console = Console(stderr=True, soft_wrap=True)  # an error stays one line

CONNECT_TIMEOUT = typer.Option(
    15.0,
    "--connect-timeout",
    min=0.0,
    help="Seconds to wait for the Kafka cluster to answer; then one line says why it did not.",
)


def worker(
    loglevel: str = typer.Option("info", help="Faust log level."),
    connect_timeout: float = typer.Option(
        30.0, "--connect-timeout", min=0.0, help="Seconds to wait for the Kafka cluster."
    ),
) -> None:
    """Start a Faust worker: agents, tables, index replica and the web server (LLMREC_WEB_PORT)."""
    settings = get_settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(ensure_topics(settings, connect_timeout))
    except BrokerError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    from faust import Worker

    import workers.agents
    import workers.web  # noqa: F401 - registers the views
    from workers import gcwatch, logjson, logsafety
    from workers.app import app

    class SafeLogWorker(Worker):
        # mode's Worker clears the root handlers and builds its own when it starts; this hook
        # runs right after, so the log-safety filter sits on the handlers the worker uses.
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            logsafety.install(logger)
            logjson.apply(logger, settings.log_format)

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
    connect_timeout_s: float = 30.0,
) -> tuple[int, int]:
    """Send items (all) then events (at `speed` events/s, 0 = as fast as possible)."""
    names = topic_names(settings)
    await ensure_topics(settings, connect_timeout_s)
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
        None, help="Send this one JSON event (or item with --to items), checked first."
    ),
    to: str = typer.Option("events", help="Topic for --event: events or items."),
    unkeyed: bool = typer.Option(False, help="Send events without a key (tests repartitioning)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only check the records; send none."),
    connect_timeout: float = CONNECT_TIMEOUT,
) -> None:
    """Replay a MovieLens dataset (or contract files: --items and --events) into Kafka, or send
    one JSON record.

    Records are checked against the event contract as the worker checks them. A refused
    --event is not sent: each problem is printed and the exit status is 1. Of contract files,
    the valid records are sent and the refused ones listed with their line numbers; the exit
    status is then 1. An unreachable cluster: one line, exit status 2.
    """
    settings = get_settings()
    if event is not None:
        _produce_one(settings, to, event, dry_run=dry_run, connect_timeout_s=connect_timeout)
        return
    all_items: Iterable[dict[str, Any]]
    all_events: Iterable[dict[str, Any]]
    refused = 0
    if items_file is not None or events_file is not None:
        all_items, all_events, refused = _contract_records(items_file, events_file)
        n_all = len(all_events)
    else:
        ds = load_movielens(settings.data_dir, dataset)
        all_items, all_events = item_records(ds), dataset_events(ds)
        n_all = len(ds.ratings) + len(ds.tags)
    it_items = islice(all_items, item_limit) if items else None
    it_events = islice(all_events, limit) if events else None
    total = min(limit or 10**12, n_all)
    if dry_run:
        n_items, n_events = sum(1 for _ in it_items or ()), sum(1 for _ in it_events or ())
        console.print(f"would send {n_items} items and {n_events} events (--dry-run)")
    else:
        n_items, n_events = asyncio.run(
            replay(
                settings,
                it_items,
                it_events,
                speed=speed,
                key_by_user=not unkeyed,
                total=total,
                connect_timeout_s=connect_timeout,
            )
        )
        console.print(f"sent {n_items} items and {n_events} events to {settings.bootstrap}")
    if refused:
        console.print(f"[red]refused {refused} records[/] (not sent; the first are listed above)")
        raise typer.Exit(1)


def check_record(settings: Settings, role: str, raw: bytes) -> bytes:
    """The Kafka key of a record the worker will admit on `role` (events: its user_id, items:
    its item_id), checked with the worker's own parsers and rules; else InvalidRecordError."""
    if role == "items":
        return parse_item(raw).item_id.encode()
    ev = parse_user_record(raw)  # an event, or a request to forget a user
    skewed = future_skew(ev.ts, time.time(), settings.max_future_skew_s)  # the worker's rule
    if skewed is not None:
        raise InvalidRecordError(skewed)
    return ev.user_id.encode()


def problem_lines(reason: str) -> list[str]:
    """A refusal's problems one a line: "Event invalid: ts: Field required; …" -> "ts: …", …"""
    model, sep, problems = reason.partition(" invalid: ")
    return problems.split("; ") if sep and model.isidentifier() else [reason]


def _produce_one(
    settings: Settings, role: str, text: str, *, dry_run: bool, connect_timeout_s: float
) -> None:
    names = topic_names(settings)
    if role not in {"events", "items"}:
        raise typer.BadParameter(f"--to is events or items, not {role!r}")
    raw = text.encode("utf-8", "surrogateescape")
    try:
        key = check_record(settings, role, raw)
    except InvalidRecordError as exc:
        for line in problem_lines(exc.reason):
            console.print(f"[red]refused:[/] {escape(line)}", highlight=False)
        raise typer.Exit(1) from None
    if dry_run:
        console.print(f"valid for {names[role]} (--dry-run: not sent)")
        return
    asyncio.run(_send_one(settings, names[role], raw, key, connect_timeout_s))
    console.print(f"sent 1 record to {names[role]} (key {escape(key.decode())})", highlight=False)


def _contract_records(
    items_file: Path | None, events_file: Path | None
) -> tuple[Iterator[dict[str, Any]], list[dict[str, Any]], int]:
    """Valid records of contract files: the catalogue, the events in stable time order, and how
    many records were refused (listed here)."""
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
    return items, events, len(ds.errors)


async def _send_one(
    settings: Settings, topic: str, raw: bytes, key: bytes, connect_timeout_s: float
) -> None:
    await ensure_topics(settings, connect_timeout_s)
    producer = AIOKafkaProducer(**client_kwargs(settings), **DURABLE)
    await producer.start()
    try:
        await producer.send_and_wait(topic, raw, key=key)
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
    settings: Settings,
    from_beginning: bool,
    users: set[str],
    max_n: int | None,
    *,
    as_json: bool = False,
    connect_timeout_s: float = 15.0,
) -> int:
    await probe(settings, connect_timeout_s)
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings),
        group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    out = Console()
    shown = 0
    try:
        await assign_all(
            consumer, topic_names(settings)["recommendations"], timeout_s=connect_timeout_s
        )
        titles = {} if as_json else await load_titles(settings)
        async for msg in consumer:
            # A tombstone (no value) says the worker forgot the user of its key.
            doc = None if msg.value is None else orjson.loads(msg.value)
            user_id = str(doc["user_id"]) if doc else (msg.key or b"").decode("utf-8", "replace")
            if users and user_id not in users:
                continue
            if as_json:
                typer.echo(orjson.dumps(doc or {"user_id": user_id, "deleted": True}).decode())
            elif doc is None:
                out.print(f"[bold]user {escape(user_id)}[/]: forgotten")
            else:
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
    as_json: bool = typer.Option(
        False,
        "--json",
        help="One JSON document a line: each list as published; a forgotten user as "
        '{"user_id": ..., "deleted": true}.',
    ),
    connect_timeout: float = CONNECT_TIMEOUT,
) -> None:
    """Pretty-print the recommendations topic with item titles and reasons (or --json)."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            _tail(
                get_settings(),
                from_beginning,
                set(user or ()),
                max_n,
                as_json=as_json,
                connect_timeout_s=connect_timeout,
            )
        )
