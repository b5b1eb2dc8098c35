"""Reading dead letters back (`original_bytes`), and the checks `produce` and `dlq replay` share."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer

from llmrec.exceptions import InvalidRecordError
from workers.cli_dlq import DeadLetter, Outcome, Selection, _as_was, _fixed, replay_targets
from workers.cli_pipeline import check_record, problem_lines
from workers.dlq import DLQ_MAX_VALUE_BYTES, dead_letter_record, original_bytes
from workers.settings import Settings

SETTINGS = Settings(topic_prefix="t.")
EVENT = {"event_id": "e1", "type": "view", "user_id": "u1", "item_id": "i1", "ts": 1_700_000_000}


def _doc(raw: bytes | None, key: bytes | None = b"u1", topic: str = "t.events") -> dict[str, Any]:
    doc = dead_letter_record(
        raw=raw, key=key, error="bad", kind="invalid", topic=topic, partition=0, offset=7
    )
    return orjson.loads(orjson.dumps(doc))  # as read back from the topic


@pytest.mark.parametrize(
    "raw",
    [b'{"a": "\xc3\xbc"}', b"\xff\x00binary", b"", None],
    ids=["utf8", "binary", "empty", "null"],
)
def test_original_bytes_gives_back_what_was_dead_lettered(raw: bytes | None) -> None:
    doc = _doc(raw, key=b"\xfe-key")
    assert original_bytes(doc) == raw
    assert original_bytes(doc, "key") == b"\xfe-key"


def test_original_bytes_refuses_a_truncated_value() -> None:
    doc = _doc(b"x" * (DLQ_MAX_VALUE_BYTES + 1))
    with pytest.raises(ValueError, match="only the first 1,024 bytes of its value"):
        original_bytes(doc)


def test_as_was_skips_truncated_and_foreign_sources_and_maps_internal_event_topics() -> None:
    targets = replay_targets(SETTINGS)
    big = DeadLetter("t.events.dlq", 0, 1, _doc(b"x" * (DLQ_MAX_VALUE_BYTES + 1)))
    assert str(_as_was(big, targets)).startswith("truncated in the DLQ")
    stats = DeadLetter("t.events.dlq", 0, 2, _doc(b"{}", topic="t.item-updates"))
    assert "not a replay target" in str(_as_was(stats, targets))
    assert _as_was(DeadLetter("t.events.dlq", 0, 3, None), targets) == "not a dead-letter document"
    parked = DeadLetter("t.events.dlq", 0, 4, _doc(b"\x01raw", topic="t.events-parked"))
    assert _as_was(parked, targets) == ("t.events", b"u1", b"\x01raw")


def test_selection_by_kind_reason_and_offsets() -> None:
    doc = _doc(b"{}")
    letters = [DeadLetter("t.events.dlq", p, o, doc) for p, o in [(0, 1), (0, 5), (1, 5), (1, 9)]]
    sel = Selection.parse(None, None, "0:4-6, 1:9")
    assert [(d.partition, d.offset) for d in letters if sel.matches(d)] == [(0, 5), (1, 9)]
    any_partition = Selection.parse(None, None, "5")
    assert [d.partition for d in letters if any_partition.matches(d)] == [0, 1]
    assert not Selection.parse("unknown_item", None, None).matches(letters[0])
    assert Selection.parse("invalid", "ba", None).matches(letters[0])
    assert not Selection.parse(None, "nope", None).matches(letters[0])
    with pytest.raises(typer.BadParameter):
        Selection.parse(None, None, "0:x")


def test_check_record_uses_the_workers_rules_and_keys_by_id() -> None:
    assert check_record(SETTINGS, "events", orjson.dumps(EVENT)) == b"u1"
    forget = {"type": "forget", "event_id": "f", "user_id": "u9", "ts": 1_700_000_000}
    assert check_record(SETTINGS, "events", orjson.dumps(forget)) == b"u9"
    assert check_record(SETTINGS, "items", b'{"item_id": "i1", "title": "T"}') == b"i1"
    ahead = {**EVENT, "ts": int(time.time()) + 10 * 86_400}
    with pytest.raises(InvalidRecordError, match="in the future"):
        check_record(SETTINGS, "events", orjson.dumps(ahead))
    with pytest.raises(InvalidRecordError) as refused:
        check_record(SETTINGS, "events", b'{"event_id": "e", "type": "nope", "user_id": "u"}')
    lines = problem_lines(refused.value.reason)
    assert lines[0].startswith("type: Input should be 'view'")
    assert lines[1:] == ["item_id: Field required", "ts: Field required"]
    assert problem_lines("not valid JSON: x; y") == ["not valid JSON: x; y"]


def test_fixed_file_lines_are_checked_and_keyed(tmp_path: Path) -> None:
    tail_line = {**_doc(b"broken", topic="t.items"), "dlq_offset": 3, "dlq_partition": 0}
    lines = [
        orjson.dumps({**tail_line, "value": {"item_id": "i2", "title": "Fixed"}}),
        orjson.dumps({**tail_line, "value": '{"item_id": "i3", "title": "As text"}'}),
        orjson.dumps(EVENT),  # a contract record itself: --to
        b"",
        orjson.dumps({**tail_line, "value": {"item_id": "i4"}}),  # still no title
        orjson.dumps({**tail_line, "value": "head", "value_truncated": True}),
        b"{not json",
    ]
    path = tmp_path / "fixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    outcome = Outcome()

    sends = _fixed(SETTINGS, path, "events", outcome)

    assert sends == [
        ("t.items", b"i2", b'{"item_id":"i2","title":"Fixed"}'),
        ("t.items", b"i3", b'{"item_id": "i3", "title": "As text"}'),
        ("t.events", b"u1", orjson.dumps(EVENT)),
    ]
    assert [where.rsplit(":", 1)[1] for where, _ in outcome.refused] == ["5", "6", "7"]
    assert "title is required" in outcome.refused[0][1]
