"""Every field of the event contract is bounded: at the bound a record passes, past it the
reason names the field; the raw size is checked before decoding; reasons never quote content."""

from __future__ import annotations

import json
import traceback
from typing import Any

import jsonschema
import orjson
import pytest

from llmrec.events import (
    MAX_ATTRIBUTE_CHARS,
    MAX_ATTRIBUTES,
    MAX_CATEGORIES,
    MAX_CONTEXT_KEYS,
    MAX_ID_CHARS,
    MAX_KEY_CHARS,
    MAX_LABEL_CHARS,
    MAX_RECORD_BYTES,
    MAX_TAGS,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    MAX_TS,
    parse_event,
    parse_item,
)
from llmrec.exceptions import InvalidRecordError
from llmrec.schemas_gen import SCHEMA_DIR

ITEM: dict[str, Any] = {"item_id": "i1", "title": "A title", "ts": 0}
EVENT: dict[str, Any] = {"event_id": "e1", "type": "view", "user_id": "u1", "item_id": "i1"}
EVENT["ts"] = 1_700_000_000


def _reason(parse: Any, record: dict[str, Any] | bytes | str) -> str:
    with pytest.raises(InvalidRecordError) as info:
        parse(record)
    return info.value.reason


def _schema(name: str) -> dict[str, Any]:
    return dict(json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8")))


# --- field bounds: (field, value at the bound, value past it, what the reason names) -----------

ITEM_BOUNDS = [
    ("item_id", "i" * MAX_ID_CHARS, "i" * (MAX_ID_CHARS + 1), "item_id"),
    ("title", "t" * MAX_TITLE_CHARS, "t" * (MAX_TITLE_CHARS + 1), "title"),
    ("description", "d" * MAX_TEXT_CHARS, "d" * (MAX_TEXT_CHARS + 1), "description"),
    ("categories", ["c"] * MAX_CATEGORIES, ["c"] * (MAX_CATEGORIES + 1), "categories"),
    ("categories", ["c" * MAX_LABEL_CHARS], ["ok", "c" * (MAX_LABEL_CHARS + 1)], "categories.1"),
    ("categories", ["c"], [" "], "categories.0"),
    ("tags", ["t"] * MAX_TAGS, ["t"] * (MAX_TAGS + 1), "tags"),
    ("tags", ["t" * MAX_LABEL_CHARS], ["t" * (MAX_LABEL_CHARS + 1)], "tags.0"),
    (
        "attributes",
        {f"k{n}": n for n in range(MAX_ATTRIBUTES)},
        {f"k{n}": n for n in range(MAX_ATTRIBUTES + 1)},
        "attributes",
    ),
    ("attributes", {"k" * MAX_KEY_CHARS: 1}, {"k" * (MAX_KEY_CHARS + 1): 1}, "attributes.kkk"),
    (
        "attributes",
        {"brand": "b" * MAX_ATTRIBUTE_CHARS},
        {"brand": "b" * (MAX_ATTRIBUTE_CHARS + 1)},
        "attributes.brand",
    ),
    ("attributes", {"n": 1.5, "f": True}, {"n": [1, 2]}, "attributes.n"),
]

EVENT_BOUNDS = [
    ("user_id", "u" * MAX_ID_CHARS, "u" * (MAX_ID_CHARS + 1), "user_id"),
    ("event_id", "e" * MAX_ID_CHARS, "", "event_id"),
    ("text", "r" * MAX_TEXT_CHARS, "r" * (MAX_TEXT_CHARS + 1), "text"),
    (
        "context",
        {f"k{n}": {"any": [n]} for n in range(MAX_CONTEXT_KEYS)},
        {f"k{n}": n for n in range(MAX_CONTEXT_KEYS + 1)},
        "context",
    ),
    ("context", {"k" * MAX_KEY_CHARS: 1}, {"k" * (MAX_KEY_CHARS + 1): 1}, "context.kkk"),
]


@pytest.mark.parametrize(("field", "ok", "bad", "where"), ITEM_BOUNDS)
def test_item_bounds(field: str, ok: object, bad: object, where: str) -> None:
    assert getattr(parse_item({**ITEM, field: ok}), field) == ok
    reason = _reason(parse_item, {**ITEM, field: bad})
    assert reason.startswith(f"ItemRecord invalid: {where}"), reason


@pytest.mark.parametrize(("field", "ok", "bad", "where"), EVENT_BOUNDS)
def test_event_bounds(field: str, ok: object, bad: object, where: str) -> None:
    assert getattr(parse_event({**EVENT, field: ok}), field) == ok
    reason = _reason(parse_event, {**EVENT, field: bad})
    assert reason.startswith(f"Event invalid: {where}"), reason


def test_a_long_key_is_cut_in_the_reason() -> None:
    reason = _reason(parse_event, {**EVENT, "context": {"k" * 5_000: 1}})
    assert len(reason) < 300
    assert "k" * MAX_KEY_CHARS + "…" in reason


def test_many_problems_are_counted_not_listed() -> None:
    reason = _reason(parse_item, {**ITEM, "tags": ["t" * (MAX_LABEL_CHARS + 1)] * 50})
    assert reason.count("tags.") == 10
    assert reason.endswith("and 40 more")


# --- ts -------------------------------------------------------------------------------------


@pytest.mark.parametrize("ts", [0, 1, 820_454_400, 1_700_000_000.25, MAX_TS])
def test_ts_in_range_passes(ts: float) -> None:
    assert parse_event({**EVENT, "ts": ts}).ts == ts


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ('"ts": "inf"', "ts: Input should be a valid number"),
        ('"ts": "1700000000"', "ts: Input should be a valid number"),
        ('"ts": true', "ts: Input should be a valid number"),
        ('"ts": null', "ts: Input should be a valid number"),
        ('"ts": -1', "ts: Input should be greater than or equal to 0"),
        ('"ts": 7258118400', f"ts: Input should be less than or equal to {MAX_TS}"),  # 2200
        ('"ts": 1e300', f"ts: Input should be less than or equal to {MAX_TS}"),
        (
            '"ts": 1.7e12',
            "ts 1700000000000 looks like milliseconds; send seconds since the epoch",
        ),
        ('"ts": 1700000000000000', "looks like microseconds"),
        ('"ts": 1700000000000000000', "looks like nanoseconds"),
    ],
)
def test_ts_out_of_contract_is_refused(raw: str, says: str) -> None:
    line = '{"event_id": "e", "type": "view", "user_id": "u", "item_id": "i", ' + raw + "}"
    assert says in _reason(parse_event, line)


def test_ts_json_infinity_is_not_valid_json() -> None:
    assert _reason(parse_event, '{"ts": 1e999}').startswith("not valid JSON")


@pytest.mark.parametrize("ts", [float("nan"), float("inf"), True])
def test_ts_from_python_must_be_a_finite_number(ts: object) -> None:
    reason = _reason(parse_event, {**EVENT, "ts": ts})
    assert reason.startswith("Event invalid: ts: Input should be a")


def test_item_ts_defaults_to_zero() -> None:
    assert parse_item({"item_id": "i", "title": "t"}).ts == 0.0


# --- the whole record -----------------------------------------------------------------------


def test_raw_size_limit_is_checked_before_decoding() -> None:
    pad = MAX_RECORD_BYTES - len(orjson.dumps({**EVENT, "context": {"pad": ""}}))
    at_limit = orjson.dumps({**EVENT, "context": {"pad": "x" * pad}})
    assert len(at_limit) == MAX_RECORD_BYTES
    assert parse_event(at_limit).context == {"pad": "x" * pad}
    assert parse_event(at_limit.decode()).event_id == "e1"

    over = b"{" + b" " * MAX_RECORD_BYTES + b"not even JSON"
    reason = _reason(parse_event, over)
    assert reason == f"record is {len(over):,} bytes; the limit is {MAX_RECORD_BYTES:,}"
    assert "the limit is 131,072" in reason


def test_raw_size_of_text_counts_utf8_bytes() -> None:
    text = "é" * (MAX_RECORD_BYTES // 2)  # fewer characters than the limit, more bytes
    reason = _reason(parse_item, orjson.dumps({**ITEM, "description": text}).decode())
    assert reason.startswith("record is ")


def test_one_max_text_fits_even_ascii_escaped() -> None:
    review = {**EVENT, "type": "review", "text": "評" * MAX_TEXT_CHARS}
    line = json.dumps(review)  # ensure_ascii: 6 bytes a character
    assert len(line) > 6 * MAX_TEXT_CHARS
    assert parse_event(line).text == review["text"]


def test_a_reason_never_quotes_the_record() -> None:
    secret = "my very personal review " * 1_000  # 24,000 characters: over the text bound
    for record in (
        {**EVENT, "type": "review", "text": secret},
        {**EVENT, "type": "rating", "rating": 9, "text": secret[:MAX_TEXT_CHARS]},
        {**EVENT, "type": "teleport", "text": secret[:MAX_TEXT_CHARS]},
    ):
        with pytest.raises(InvalidRecordError) as info:
            parse_event(orjson.dumps(record))
        assert "personal" not in info.value.reason
        assert len(info.value.reason) < 500
        # nothing chained either: a logged traceback shows only the reason
        assert info.value.__cause__ is None
        assert info.value.__suppress_context__
        shown = "".join(traceback.format_exception(info.value))
        assert "personal" not in shown


# --- the JSON Schemas publish the same bounds ----------------------------------------------


def test_schemas_carry_the_bounds() -> None:
    item, event = _schema("item.json")["properties"], _schema("event.json")["properties"]
    assert item["title"]["maxLength"] == MAX_TITLE_CHARS
    assert item["categories"]["maxItems"] == MAX_CATEGORIES
    assert item["categories"]["items"]["maxLength"] == MAX_LABEL_CHARS
    assert item["tags"]["maxItems"] == MAX_TAGS
    assert item["tags"]["items"]["maxLength"] == MAX_LABEL_CHARS
    assert item["attributes"]["maxProperties"] == MAX_ATTRIBUTES
    assert item["attributes"]["propertyNames"]["maxLength"] == MAX_KEY_CHARS
    assert {"type": "string", "maxLength": MAX_ATTRIBUTE_CHARS} in (
        item["attributes"]["additionalProperties"]["anyOf"]
    )
    assert event["ts"]["maximum"] == item["ts"]["maximum"] == MAX_TS
    assert event["ts"]["minimum"] == 0
    assert event["context"]["anyOf"][0]["maxProperties"] == MAX_CONTEXT_KEYS
    assert "131,072 bytes" in _schema("event.json")["description"]
    assert "131,072 bytes" in _schema("item.json")["description"]
    assert f"{MAX_RECORD_BYTES:,}" == "131,072"


@pytest.mark.parametrize(
    ("name", "parse", "good", "bad"),
    [
        ("item.json", parse_item, {**ITEM, "tags": ["t" * MAX_LABEL_CHARS]}, {"tags": ["t" * 101]}),
        ("item.json", parse_item, {**ITEM, "attributes": {"a": 1}}, {"attributes": {"": 1}}),
        ("event.json", parse_event, {**EVENT, "ts": MAX_TS}, {"ts": MAX_TS + 1}),
        ("event.json", parse_event, EVENT, {"ts": "1700000000"}),
        ("event.json", parse_event, EVENT, {"context": {str(n): n for n in range(33)}}),
    ],
)
def test_schema_and_parser_agree(
    name: str, parse: Any, good: dict[str, Any], bad: dict[str, Any]
) -> None:
    schema = _schema(name)
    jsonschema.validate(good, schema)
    parse(good)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, **bad}, schema)
    with pytest.raises(InvalidRecordError):
        parse({**good, **bad})
