"""The dead-letter policy: bounded documents, original bytes kept when they fit, never raises."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from typing import Any

import jsonschema
import orjson
import pytest

from llmrec.schemas_gen import SCHEMA_DIR
from workers import metrics
from workers.dlq import (
    DLQ_MAX_ERROR_CHARS,
    DLQ_MAX_KEY_BYTES,
    DLQ_MAX_VALUE_BYTES,
    HEAD_BYTES,
    dead_letter,
    dead_letter_record,
)

SCHEMA = json.loads((SCHEMA_DIR / "dead_letter.json").read_text(encoding="utf-8"))
WHERE: dict[str, Any] = {"kind": "invalid", "topic": "events", "partition": 3, "offset": 42}


class FakeTopic:
    """Just enough of a Faust topic: `send` records its arguments, or raises `fail`."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.fail = fail
        self.sent: list[tuple[bytes | None, bytes]] = []

    async def send(self, *, key: bytes | None, value: bytes) -> None:
        if self.fail is not None:
            raise self.fail
        self.sent.append((key, value))


def _record(raw: bytes | None, key: bytes | None = b"u1", error: str = "bad") -> dict[str, Any]:
    doc = dead_letter_record(raw=raw, key=key, error=error, **WHERE)
    jsonschema.validate(doc, SCHEMA)
    return doc


def _failures(source: str) -> float:
    value = metrics.REGISTRY.get_sample_value("llmrec_dlq_send_failures_total", {"source": source})
    return value or 0.0


def test_a_small_record_is_kept_whole() -> None:
    raw = orjson.dumps({"event_id": "e", "text": "ünïcode"})
    doc = _record(raw)
    assert doc["value"].encode() == raw
    assert doc["value_encoding"] == "utf-8"
    assert "value_truncated" not in doc
    assert (doc["key"], doc["key_encoding"]) == ("u1", "utf-8")
    assert doc["source"] == {"topic": "events", "partition": 3, "offset": 42}


def test_a_value_that_fits_exactly_is_not_cut() -> None:
    raw = b"a" * (DLQ_MAX_VALUE_BYTES - 2)  # the two quotes make it DLQ_MAX_VALUE_BYTES
    assert _record(raw)["value"] == raw.decode()
    assert _record(raw + b"a")["value_truncated"] is True


def test_a_1mb_value_becomes_a_summary_under_the_limit() -> None:
    raw = ("x" * 1023 + "é").encode() * 1024  # 1 MB of UTF-8; bytes 1,023-1,024 are one "é"
    doc = _record(raw)
    encoded = orjson.dumps(doc)

    assert len(encoded) < DLQ_MAX_VALUE_BYTES
    assert doc["value_truncated"] is True
    assert doc["value_size"] == len(raw) == 1025 * 1024
    assert doc["value_sha256"] == hashlib.sha256(raw).hexdigest()
    assert doc["value_encoding"] == "utf-8"
    assert raw.startswith(doc["value"].encode())
    assert doc["value"] == "x" * 1023  # the "é" cut by the head is dropped, not base64


def test_a_binary_value_is_base64_whole_or_in_part() -> None:
    small = b"\xff\xfe\x00binary"
    doc = _record(small)
    assert doc["value_encoding"] == "base64"
    assert base64.b64decode(doc["value"]) == small

    big = bytes(range(256)) * 4096  # 1 MiB, not UTF-8
    doc = _record(big)
    assert doc["value_encoding"] == "base64"
    assert doc["value_truncated"] is True
    assert base64.b64decode(doc["value"]) == big[:HEAD_BYTES]
    assert doc["value_size"] == len(big)


def test_escaping_counts_toward_the_limit() -> None:
    raw = b"\x01" * (DLQ_MAX_VALUE_BYTES // 4)  # valid UTF-8, but 6 bytes a byte as JSON
    doc = _record(raw)
    assert doc["value_truncated"] is True
    assert len(orjson.dumps(doc)) < DLQ_MAX_VALUE_BYTES


def test_an_oversized_key_gets_the_same_treatment() -> None:
    key = b"k" * (DLQ_MAX_KEY_BYTES * 4)
    doc = _record(b"{}", key=key)
    assert doc["key_truncated"] is True
    assert doc["key"] == "k" * HEAD_BYTES
    assert doc["key_size"] == len(key)
    assert doc["key_sha256"] == hashlib.sha256(key).hexdigest()
    assert doc["value"] == "{}"


def test_null_value_and_key() -> None:
    doc = _record(None, key=None)
    assert (doc["value"], doc["value_encoding"], doc["key"], doc["key_encoding"]) == (
        None,
        "null",
        None,
        "null",
    )


def test_the_reason_is_capped_and_always_encodable() -> None:
    doc = _record(b"{}", error="boom \ud800 " + "x" * 10 * DLQ_MAX_ERROR_CHARS)
    assert len(doc["error"]) == DLQ_MAX_ERROR_CHARS
    assert doc["error"].startswith("boom ? ")
    orjson.dumps(doc)


def test_the_schema_states_the_caps_of_workers_dlq() -> None:
    props = SCHEMA["properties"]
    assert props["error"]["maxLength"] == DLQ_MAX_ERROR_CHARS
    assert f"{HEAD_BYTES:,} bytes" in props["value_truncated"]["description"]


async def test_dead_letter_sends_the_document() -> None:
    topic = FakeTopic()
    await dead_letter(topic, b"\xff", b"u1", "not valid JSON", **WHERE)  # type: ignore[arg-type]
    [(key, value)] = topic.sent
    assert key == b"u1"
    doc = orjson.loads(value)
    assert doc["value"] == base64.b64encode(b"\xff").decode()
    assert doc["error"] == "not valid JSON"


async def test_an_oversized_key_is_not_the_messages_key() -> None:
    topic, key = FakeTopic(), b"k" * (DLQ_MAX_KEY_BYTES * 4)
    await dead_letter(topic, b"{}", key, "bad", **WHERE)  # type: ignore[arg-type]
    [(sent_key, _)] = topic.sent
    assert sent_key == hashlib.sha256(key).hexdigest().encode()


async def test_a_failing_send_is_counted_and_logged_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = FakeTopic(fail=RuntimeError("broker gone; payload: secret text"))
    source = "events-send-fails"
    before = _failures(source)
    with caplog.at_level(logging.WARNING, logger="workers.dlq"):
        await dead_letter(
            topic, b'{"text": "secret text"}', b"u1", "bad", kind="invalid",  # type: ignore[arg-type]
            topic=source, partition=1, offset=9,
        )  # fmt: skip
    assert _failures(source) == before + 1
    failed = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failed) == 1
    line = failed[0].getMessage()
    assert f"{source}[1]@9" in line
    assert "RuntimeError" in line
    assert "secret" not in caplog.text
    assert failed[0].exc_info is None


async def test_cancellation_still_propagates() -> None:
    import asyncio

    topic = FakeTopic(fail=asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await dead_letter(topic, b"{}", None, "bad", **WHERE)  # type: ignore[arg-type]
