"""The JSON Schema files are generated from the pydantic models and must stay in sync."""

from __future__ import annotations

import json

import jsonschema
import pytest

from llmrec.schemas_gen import SCHEMA_DIR, render_schemas
from workers.dlq import dead_letter_record


def test_schema_files_match_the_models() -> None:
    for name, text in render_schemas().items():
        path = SCHEMA_DIR / name
        assert path.exists(), f"{name} missing: run python -m llmrec.schemas_gen"
        assert path.read_text(encoding="utf-8") == text, (
            f"{name} is stale: run python -m llmrec.schemas_gen"
        )


def _schema(name: str) -> dict[str, object]:
    return dict(json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8")))


def test_event_schema_accepts_a_valid_event_and_rejects_a_bad_type() -> None:
    schema = _schema("event.json")
    ok = {"event_id": "e1", "type": "review", "user_id": "u", "item_id": "i", "ts": 1, "text": "x"}
    jsonschema.validate(ok, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**ok, "type": "teleport"}, schema)


def test_dead_letter_record_matches_its_schema() -> None:
    doc = dead_letter_record(
        raw=b"\xff\xfe", key=b"u1", error="not valid JSON", kind="invalid",
        topic="events", partition=0, offset=7,
    )  # fmt: skip
    jsonschema.validate(doc, _schema("dead_letter.json"))
    assert doc["value_encoding"] == "base64"
    assert doc["key"] == "u1"
