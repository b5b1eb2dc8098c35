"""Contract datasets on disk: line errors with their line numbers, gzip, deletes, empty files."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from llmrec.data.contract import from_records, load_contract, read_jsonl, write_jsonl
from llmrec.events import EventType, parse_item
from llmrec.exceptions import DatasetError

ITEMS = [
    '{"item_id": "a", "title": "Alpha", "categories": ["x"]}',
    "{not json",
    "",
    '{"item_id": "b"}',
    '{"item_id": "c", "title": "Gamma"}',
]
EVENTS = [
    '{"event_id": "e1", "type": "view", "user_id": "u1", "item_id": "a", "ts": 10}',
    '{"event_id": "e2", "type": "rating", "user_id": "u1", "item_id": "c", "ts": 11}',
    '["an", "array"]',
    '{"event_id": "e4", "type": "review", "user_id": "u2", "item_id": "a", "ts": 5, "text": "ok"}',
]


def _lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_line_errors_carry_file_and_line_number(tmp_path: Path) -> None:
    items = _lines(tmp_path / "items.jsonl", ITEMS)
    events = _lines(tmp_path / "events.jsonl", EVENTS)

    ds = load_contract(items, events)

    assert sorted(ds.items) == ["a", "c"]
    assert [e.event_id for e in ds.events] == ["e1", "e4"]  # file order kept
    where = [(e.source, e.line) for e in ds.errors]
    assert where == [(str(items), 2), (str(items), 4), (str(events), 2), (str(events), 3)]
    assert "not valid JSON" in ds.errors[0].reason
    assert "title is required" in ds.errors[1].reason
    assert "needs a rating" in ds.errors[2].reason
    assert "expected a JSON object" in ds.errors[3].reason
    assert str(ds.errors[1]) == f"{items}:4: {ds.errors[1].reason}"
    assert ds.name == "events"


def test_a_file_without_a_valid_record_is_an_error(tmp_path: Path) -> None:
    bad = _lines(tmp_path / "items.jsonl", ['{"item_id": "x"}', "", "[]"])
    with pytest.raises(DatasetError, match=r"no valid record \(2 invalid\).*:1:"):
        read_jsonl(bad, parse_item)
    with pytest.raises(DatasetError, match="file not found"):
        read_jsonl(tmp_path / "missing.jsonl", parse_item)
    empty = _lines(tmp_path / "empty.jsonl", [""])
    with pytest.raises(DatasetError, match=r"\(0 invalid\)"):
        read_jsonl(empty, parse_item)


def test_gzip_round_trip(tmp_path: Path) -> None:
    items = [{"item_id": f"i{n}", "title": f"Item {n}", "tags": ["é"]} for n in range(3)]
    events = [
        {"event_id": "e1", "type": "purchase", "user_id": "u", "item_id": "i2", "ts": 3},
        {"event_id": "e2", "type": "rating", "user_id": "u", "item_id": "i0", "ts": 4, "rating": 2},
    ]
    items_path, events_path = tmp_path / "out" / "items.jsonl.gz", tmp_path / "events.jsonl.gz"

    assert write_jsonl(items_path, items) == 3
    assert write_jsonl(events_path, events) == 2

    assert items_path.read_bytes()[:2] == b"\x1f\x8b"  # really gzip
    with gzip.open(items_path, "rb") as f:
        assert [orjson.loads(line) for line in f] == items
    ds = load_contract(items_path, events_path, name="tiny")
    assert ds.name == "tiny"
    assert ds.errors == []
    assert ds.items["i1"].tags == ["é"]
    assert [(e.type, e.item_id, e.rating) for e in ds.events] == [
        (EventType.PURCHASE, "i2", None),
        (EventType.RATING, "i0", 2.0),
    ]


def test_deleted_items_are_removed_and_the_last_upsert_wins() -> None:
    items = [
        {"item_id": "a", "title": "first"},
        {"item_id": "b", "title": "old"},
        {"item_id": "a", "deleted": True},
        {"item_id": "b", "title": "new"},
        {"item_id": "c", "title": "gone", "deleted": True},
    ]
    events = [{"event_id": "e", "type": "view", "user_id": "u", "item_id": "b", "ts": 0}]

    ds = from_records("mem", items, events)

    assert {k: v.title for k, v in ds.items.items()} == {"b": "new"}
    assert ds.errors == []


def test_in_memory_records_are_validated_like_lines() -> None:
    items = [{"item_id": "a", "title": "A"}, {"item_id": "", "title": "B"}]
    events = [
        {"event_id": "e1", "type": "teleport", "user_id": "u", "item_id": "a", "ts": 1},
        {"event_id": "e2", "type": "view", "user_id": "u", "item_id": "a", "ts": 2},
    ]

    ds = from_records("mem", items, events)

    assert [(e.source, e.line) for e in ds.errors] == [("mem:items", 2), ("mem:events", 1)]
    assert [e.event_id for e in ds.events] == ["e2"]
