"""`llmrec dlq tail` and `llmrec dlq replay`: read the dead-letter topics, re-send their records.

A dead letter (`workers/dlq.py`, `llmrec/schemas/dead_letter.json`) keeps the refused record's
bytes and key, the reason and where the record came from. `tail` shows them; `replay --all`
re-sends them as they were (after a fix in the worker); `replay --fixed FILE` re-sends corrected
records, checked first as `llmrec produce` checks them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console
from rich.markup import escape

from llmrec.data.contract import iter_lines
from llmrec.exceptions import InvalidRecordError
from workers.cli_pipeline import CONNECT_TIMEOUT, check_record, problem_lines
from workers.dlq import original_bytes
from workers.kafka_conn import DURABLE, client_kwargs, probe
from workers.settings import Settings, get_settings
from workers.topic_admin import assign_all, topic_names

__all__ = ["DeadLetter", "Selection", "app", "read_dead_letters", "replay", "tail"]

console = Console(stderr=True, soft_wrap=True, highlight=False)

app = typer.Typer(
    help="The dead-letter topics (events.dlq, items.dlq): read them, re-send their records.",
    no_args_is_help=True,
)

DLQ_ROLES = {"events": ("events_dlq",), "items": ("items_dlq",), "all": ("events_dlq", "items_dlq")}
VALUE_HEAD_CHARS = 160
SHOWN_SKIPS = 20

TOPIC = typer.Option("all", "--topic", help="Which dead-letter topic: events, items or all.")
KIND = typer.Option(None, "--kind", help="Only this kind: invalid, unknown_item, processing_error.")
ERROR_CONTAINS = typer.Option(None, "--error-contains", help="Only reasons containing this text.")
OFFSETS = typer.Option(
    None,
    "--offsets",
    help="Only these dead letters: DLQ offsets as PARTITION:OFFSET or PARTITION:FIRST-LAST, "
    "comma-separated (a bare OFFSET or FIRST-LAST matches every partition).",
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of a dead-letter topic: where it sits there, and its document (None when the
    record is not a dead-letter document)."""

    topic: str
    partition: int
    offset: int
    doc: dict[str, Any] | None

    @property
    def where(self) -> str:
        return f"{self.topic} {self.partition}@{self.offset}"

    def as_json(self) -> dict[str, Any]:
        """The document plus its own place in the DLQ (`dlq_topic`, `dlq_partition`, …)."""
        place = {"dlq_topic": self.topic, "dlq_partition": self.partition}
        return {**(self.doc or {"error": None}), **place, "dlq_offset": self.offset}


@dataclass(slots=True)
class Selection:
    """Which dead letters a command takes: a kind, a text in the reason, DLQ offsets."""

    kind: str | None = None
    error_contains: str | None = None
    offsets: dict[int | None, list[tuple[int, int]]] = field(default_factory=dict)

    @classmethod
    def parse(cls, kind: str | None, error_contains: str | None, offsets: str | None) -> Selection:
        ranges: dict[int | None, list[tuple[int, int]]] = {}
        for part in filter(None, (p.strip() for p in (offsets or "").split(","))):
            partition, _, span = part.rpartition(":")
            first, _, last = span.partition("-")
            try:
                key = int(partition) if partition else None
                ranges.setdefault(key, []).append((int(first), int(last or first)))
            except ValueError:
                raise typer.BadParameter(
                    f"--offsets: {part!r} is not P:O or P:FIRST-LAST"
                ) from None
        return cls(kind, error_contains, ranges)

    def matches(self, dl: DeadLetter) -> bool:
        doc = dl.doc or {}
        if self.kind is not None and doc.get("kind") != self.kind:
            return False
        if self.error_contains is not None and self.error_contains not in str(doc.get("error")):
            return False
        if self.offsets:
            spans = self.offsets.get(dl.partition, []) + self.offsets.get(None, [])
            return any(lo <= dl.offset <= hi for lo, hi in spans)
        return True


async def read_dead_letters(
    settings: Settings,
    roles: Iterable[str],
    *,
    from_beginning: bool = True,
    follow: bool = False,
    timeout_s: float = 15.0,
) -> AsyncGenerator[DeadLetter, None]:
    """The dead letters of the `roles` topics: those there now (or only new ones), then,
    with `follow`, every one that arrives until the caller stops."""
    await probe(settings, timeout_s)
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings),
        group_id=None,  # reads every partition from where `auto_offset_reset` says
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    try:
        names = topic_names(settings)
        tps = await assign_all(consumer, *(names[r] for r in roles), timeout_s=timeout_s)
        end = await consumer.end_offsets(tps)
        while follow or [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            for records in (await consumer.getmany(timeout_ms=200, max_records=1000)).values():
                for r in records:
                    yield DeadLetter(r.topic, r.partition, r.offset, _document(r.value))
    finally:
        await consumer.stop()


def _document(value: bytes | None) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _roles(topic: str) -> tuple[str, ...]:
    if topic not in DLQ_ROLES:
        raise typer.BadParameter(f"--topic is events, items or all, not {topic!r}")
    return DLQ_ROLES[topic]


# --- tail ----------------------------------------------------------------------------------


def describe(dl: DeadLetter) -> str:
    """A dead letter in three lines: where and when, the reason, the head of the record."""
    doc = dl.doc
    if doc is None:
        return f"{dl.where}  (not a dead-letter document)"
    src = doc.get("source") or {}
    when = datetime.fromtimestamp(float(doc.get("failed_at") or 0), UTC)
    key = doc.get("key") if doc.get("key_encoding") == "utf-8" else doc.get("key_encoding")
    head = (
        f"{dl.where}  {when:%Y-%m-%d %H:%M:%S}Z  {doc.get('kind')}  from {src.get('topic')} "
        f"{src.get('partition')}@{src.get('offset')}  key {key}"
    )
    return f"{head}\n  error: {doc.get('error')}\n  value: {_value_head(doc)}"


def _value_head(doc: dict[str, Any]) -> str:
    encoding, value = doc.get("value_encoding"), str(doc.get("value"))
    if encoding == "null":
        return "(none)"
    text = value[:VALUE_HEAD_CHARS].replace("\n", " ") + (
        "…" if len(value) > VALUE_HEAD_CHARS else ""
    )
    if encoding == "base64":
        text = f"(not UTF-8; base64) {text}"
    if doc.get("value_truncated"):
        text += f"  (truncated: {doc.get('value_size', 0):,} bytes, only the first kept)"
    return text


@app.command("tail")
def tail(  # noqa: PLR0917 - one positional per CLI option is typer's style
    topic: str = TOPIC,
    from_beginning: bool = typer.Option(
        True,
        "--from-beginning/--new-only",
        help="Start at the oldest dead letter kept, or show only those that arrive from now "
        "(--new-only implies --follow).",
    ),
    follow: bool = typer.Option(
        False, "--follow/--no-follow", help="Keep waiting for new dead letters (Ctrl-C stops)."
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="One JSON document a line: the dead letter plus dlq_topic, dlq_partition and "
        "dlq_offset (edit its value and feed the lines to `dlq replay --fixed`).",
    ),
    max_n: int | None = typer.Option(None, "--max", min=1, help="Stop after this many."),
    kind: str | None = KIND,
    error_contains: str | None = ERROR_CONTAINS,
    offsets: str | None = OFFSETS,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> None:
    """Show the dead letters: when, where from, why, and the head of the refused record.

    By default every dead letter kept (LLMREC_DLQ_RETENTION_MS, 7 days) is shown, then it stops.
    """
    roles, selection = _roles(topic), Selection.parse(kind, error_contains, offsets)
    follow = follow or not from_beginning
    out = Console(soft_wrap=True, highlight=False, markup=False)

    async def show() -> int:
        shown = 0
        letters = read_dead_letters(
            get_settings(), roles, from_beginning=from_beginning, follow=follow,
            timeout_s=connect_timeout,
        )  # fmt: skip
        async with contextlib.aclosing(letters):
            async for dl in letters:
                if not selection.matches(dl):
                    continue
                if as_json:
                    typer.echo(orjson.dumps(dl.as_json()).decode())
                else:
                    out.print(describe(dl))
                shown += 1
                if max_n is not None and shown >= max_n:
                    break
        return shown

    with contextlib.suppress(KeyboardInterrupt):
        shown = asyncio.run(show())
        if not as_json:
            console.print(f"{shown} dead letters")


# --- replay --------------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    """What a replay did: records re-sent per topic, skipped ones with their reasons."""

    sent: Counter[str] = field(default_factory=Counter)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (where, why)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (where, problem)

    def report(self, dry_run: bool) -> None:
        for where, why in self.skipped[:SHOWN_SKIPS]:
            console.print(f"[yellow]skipped[/] {escape(where)}: {escape(why)}")
        for where, problem in self.refused:
            console.print(f"[red]refused:[/] {escape(where)}: {escape(problem)}")
        verb = "would re-send" if dry_run else "re-sent"
        per_topic = ", ".join(f"{t} {n}" for t, n in sorted(self.sent.items()))
        reasons = Counter(why.split(" (")[0] for _, why in self.skipped)
        line = f"{verb} {self.sent.total()} records" + (f" ({per_topic})" if per_topic else "")
        if reasons:
            line += f"; skipped {len(self.skipped)}: " + ", ".join(
                f"{why} ({n})" for why, n in reasons.most_common()
            )
        if self.refused:
            line += f"; refused {len({where for where, _ in self.refused})} lines"
        console.print(line)


def replay_targets(settings: Settings) -> dict[str, str]:
    """Source topic -> where its dead letters go back: events (also for those that failed on
    the worker's internal re-keyed or parked copies of events) and items; nothing else."""
    names = topic_names(settings)
    events = names["events"]
    return {
        events: events,
        names["events_by_user"]: events,
        names["events_parked"]: events,
        names["items"]: names["items"],
    }


def _as_was(dl: DeadLetter, targets: dict[str, str]) -> tuple[str, bytes | None, bytes] | str:
    """(topic, key, value) to re-send a dead letter as it was, or why it cannot be."""
    if dl.doc is None:
        return "not a dead-letter document"
    source = str((dl.doc.get("source") or {}).get("topic"))
    if source not in targets:
        return f"source topic {source} is not a replay target (events or items)"
    try:
        value, key = original_bytes(dl.doc, "value"), original_bytes(dl.doc, "key")
    except ValueError as exc:
        return f"truncated in the DLQ ({exc})"
    if value is None:
        return "no value to re-send"
    return targets[source], key, value


def _fixed(
    settings: Settings, path: Path, role: str, outcome: Outcome
) -> list[tuple[str, bytes, bytes]]:
    """The corrected records of a --fixed file, checked; refusals go to `outcome`."""
    names, targets = topic_names(settings), replay_targets(settings)
    sends: list[tuple[str, bytes, bytes]] = []
    for n, line in enumerate(iter_lines(path), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            outcome.refused.append((where, f"not valid JSON ({exc})"))
            continue
        if isinstance(obj, dict) and "value" in obj:  # a `dlq tail --json` line, value edited
            value = obj["value"]
            if not isinstance(value, dict) and obj.get("value_truncated"):
                outcome.refused.append((where, "value is truncated; put the whole record there"))
                continue
            raw = orjson.dumps(value) if isinstance(value, dict) else str(value).encode()
            source = str((obj.get("source") or {}).get("topic", names[role]))
            if source not in targets:
                outcome.refused.append((where, f"source topic {source} is not events or items"))
                continue
            topic = targets[source]
        else:  # a contract record itself
            raw, topic = line.strip().encode(), names[role]
        try:
            key = check_record(settings, "items" if topic == names["items"] else "events", raw)
        except InvalidRecordError as exc:
            outcome.refused += [(where, p) for p in problem_lines(exc.reason)]
            continue
        sends.append((topic, key, raw))
    return sends


async def _replay(  # noqa: PLR0917
    settings: Settings,
    roles: tuple[str, ...],
    selection: Selection,
    fixed: Path | None,
    role: str,
    dry_run: bool,
    timeout_s: float,
) -> Outcome:
    outcome = Outcome()
    await probe(settings, timeout_s)
    producer = None if dry_run else AIOKafkaProducer(**client_kwargs(settings), **DURABLE)
    if producer is not None:
        await producer.start()
    try:

        async def send(topic: str, key: bytes | None, value: bytes) -> None:
            if producer is not None:
                await producer.send(topic, value, key=key)
            outcome.sent[topic] += 1

        if fixed is not None:
            for topic, key, value in _fixed(settings, fixed, role, outcome):
                await send(topic, key, value)
        else:
            targets = replay_targets(settings)
            letters = read_dead_letters(settings, roles, timeout_s=timeout_s)
            async with contextlib.aclosing(letters):
                async for dl in letters:
                    if not selection.matches(dl):
                        continue
                    plan = _as_was(dl, targets)
                    if isinstance(plan, str):
                        outcome.skipped.append((dl.where, plan))
                    else:
                        await send(*plan)
        if producer is not None:
            await producer.flush()
    finally:
        if producer is not None:
            await producer.stop()
    return outcome


@app.command("replay")
def replay(  # noqa: PLR0917 - one positional per CLI option is typer's style
    all_: bool = typer.Option(
        False, "--all", help="Re-send the dead letters as they were (e.g. after a worker fix)."
    ),
    fixed: Path | None = typer.Option(  # noqa: B008
        None,
        "--fixed",
        help="Re-send corrected records from this JSON-lines file: lines of `dlq tail --json` "
        "with the value corrected (an object or its JSON text), or contract records.",
    ),
    topic: str = TOPIC,
    to: str = typer.Option(
        "events", "--to", help="With --fixed: where a line without a source goes: events or items."
    ),
    kind: str | None = KIND,
    error_contains: str | None = ERROR_CONTAINS,
    offsets: str | None = OFFSETS,
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be re-sent; send none."),
    connect_timeout: float = CONNECT_TIMEOUT,
) -> None:
    """Re-send dead letters to the topic they came from (events or items of this prefix).

    --all re-sends each selected dead letter's original bytes with its original key; one kept
    only in part (a value over 256 KiB, a key over 4 KiB) cannot be and is skipped, with why.
    --fixed checks each corrected record as `llmrec produce` does, sends the valid ones (keyed
    by user_id or item_id) and lists the refused ones (exit status 1).

    Re-sending twice is harmless: the worker skips an event whose event_id is among its user's
    last applied events (InterestConfig.max_event_ids, 64), and an item record is an upsert.
    The dead letters stay in the DLQ (they expire with its retention).
    """
    if all_ == (fixed is not None):
        raise typer.BadParameter("give either --all or --fixed FILE")
    if fixed is not None and not fixed.is_file():
        raise typer.BadParameter(f"--fixed {fixed}: no such file")
    if to not in {"events", "items"}:
        raise typer.BadParameter(f"--to is events or items, not {to!r}")
    roles, selection = _roles(topic), Selection.parse(kind, error_contains, offsets)
    if fixed is not None and (kind or error_contains or offsets):
        raise typer.BadParameter(
            "--kind, --error-contains and --offsets select from the DLQ (--all)"
        )
    outcome = asyncio.run(
        _replay(get_settings(), roles, selection, fixed, to, dry_run, connect_timeout)
    )
    outcome.report(dry_run)
    if outcome.refused:
        raise typer.Exit(1)
