"""Datasets in the event contract: the records a producer sends to `items` and `events`.

Every dataset the evaluation or the replay reads arrives as these records, whatever its source:
JSON-lines files (plain or .gz) written by a converter or by a user, or records built in memory
by an adapter. Each record is validated by the contract's own parsers; an invalid one is kept as
a `LineError` (file, 1-based line, reason) and counted, never silently dropped. A file with no
valid record is an error: it is almost certainly the wrong file.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import orjson

from llmrec.events import Event, ItemRecord, parse_event, parse_item
from llmrec.exceptions import DatasetError, InvalidRecordError

__all__ = [
    "ContractDataset",
    "LineError",
    "from_records",
    "iter_lines",
    "load_contract",
    "no_valid_record",
    "open_text",
    "read_jsonl",
    "require_file",
    "write_jsonl",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LineError:
    """One record that broke the contract: where it was and why."""

    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


@dataclass(slots=True)
class ContractDataset:
    """A catalogue and an event stream, exactly as producers would send them.

    `items` keeps the last upsert of each id (a `deleted` record removes it); `events` keeps
    file order (the evaluation sorts by time itself, stably, so file order breaks ties).
    """

    name: str
    items: dict[str, ItemRecord]
    events: list[Event]
    errors: list[LineError] = field(default_factory=list)

    def fingerprint(self) -> str:
        """sha256 of the catalogue ids and every event's fields, in order: names the data a
        model was trained on, whatever file or converter it came from."""
        h = hashlib.sha256()
        for item_id in sorted(self.items):
            h.update(item_id.encode() + b"\n")
        for ev in self.events:
            h.update(ev.model_dump_json(exclude={"context"}).encode() + b"\n")
        return h.hexdigest()


def open_text(path: Path, mode: str = "rt") -> IO[str]:
    """Open `path` as UTF-8 text, through gzip when its name ends in .gz."""
    if path.suffix == ".gz":
        return gzip.open(path, mode, encoding="utf-8")  # type: ignore[return-value]
    return path.open(mode, encoding="utf-8")


def _validated(
    rows: Iterable[tuple[int, bytes | str | dict[str, Any]]],
    parse: Callable[[bytes | str | dict[str, Any]], T],
    source: str,
) -> tuple[list[T], list[LineError]]:
    ok: list[T] = []
    bad: list[LineError] = []
    for line, raw in rows:
        if isinstance(raw, str) and not raw.strip():
            continue  # a blank line is not a record
        try:
            ok.append(parse(raw))
        except InvalidRecordError as exc:
            bad.append(LineError(source, line, exc.reason))
    if not ok:
        raise no_valid_record(source, bad)
    return ok, bad


def no_valid_record(source: str, bad: Sequence[LineError]) -> DatasetError:
    """The error for a source in which not one record was valid (`bad`: its line errors)."""
    detail = f"; first problem: {bad[0]}" if bad else ""
    return DatasetError(f"{source}: no valid record ({len(bad)} invalid){detail}")


def require_file(path: Path) -> None:
    """Refuse a missing input file with a DatasetError naming it."""
    if not path.is_file():
        raise DatasetError(f"file not found: {path}")


def read_jsonl(
    path: Path, parse: Callable[[bytes | str | dict[str, Any]], T]
) -> tuple[list[T], list[LineError]]:
    """Parse every line of a JSON-lines file; returns the valid records and the line errors."""
    require_file(path)
    with open_text(path) as f:
        return _validated(enumerate(f, 1), parse, str(path))


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Write `records` one JSON object per line (gzip when the name ends in .gz); the count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open_text(path, "wt") as f:
        for rec in records:
            f.write(orjson.dumps(rec).decode())
            f.write("\n")
            n += 1
    return n


def _catalogue(records: Iterable[ItemRecord]) -> dict[str, ItemRecord]:
    items: dict[str, ItemRecord] = {}
    for rec in records:
        if rec.deleted:
            items.pop(rec.item_id, None)
        else:
            items[rec.item_id] = rec
    return items


def load_contract(items: Path, events: Path, name: str | None = None) -> ContractDataset:
    """Read an items file and an events file (JSON lines, plain or .gz) into a dataset."""
    item_recs, item_errors = read_jsonl(items, parse_item)
    event_recs, event_errors = read_jsonl(events, parse_event)
    return ContractDataset(
        name or _stem(events), _catalogue(item_recs), event_recs, item_errors + event_errors
    )


def from_records(
    name: str, items: Iterable[dict[str, Any]], events: Iterable[dict[str, Any]]
) -> ContractDataset:
    """Validate in-memory records (an adapter's output) exactly as files would be."""
    item_recs, item_errors = _validated(enumerate(items, 1), parse_item, f"{name}:items")
    event_recs, event_errors = _validated(enumerate(events, 1), parse_event, f"{name}:events")
    return ContractDataset(name, _catalogue(item_recs), event_recs, item_errors + event_errors)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".jsonl", ".json", ".ndjson"):
        name = name.removesuffix(suffix)
    return name


def iter_lines(path: Path) -> Iterator[str]:
    """The lines of a text file, plain or .gz (for converters reading raw source files)."""
    with open_text(path) as f:
        yield from f
