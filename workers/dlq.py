"""The one dead-letter policy: keep the original bytes, the reason and where it came from.

A bad record is validated at the edge, sent here with its reason, counted, and the stream
carries on. The DLQ value is JSON (schema: llmrec/schemas/dead_letter.json).

A record can only cost itself: a value (or key) too large for the document is replaced by its
first `HEAD_BYTES`, its size and its SHA-256, and `dead_letter` never raises — a DLQ that cannot
be written is counted and logged, and the stream still carries on. `original_bytes` reads a
value or key back out of a document (for `llmrec dlq replay`).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from workers import metrics

if TYPE_CHECKING:  # annotations only: the CLI reads documents back without importing Faust
    from faust.types import EventT, TopicT

__all__ = [
    "DLQ_MAX_ERROR_CHARS",
    "DLQ_MAX_KEY_BYTES",
    "DLQ_MAX_VALUE_BYTES",
    "FAILURE_REASON_CHARS",
    "HEAD_BYTES",
    "dead_letter",
    "dead_letter_event",
    "dead_letter_failure",
    "dead_letter_record",
    "original_bytes",
]

log = logging.getLogger(__name__)

DLQ_MAX_VALUE_BYTES = 256 * 1024
"""The most the value may take in the document, as JSON text. The producer's request limit is
1 MB and base64 grows bytes by 4/3: a 192 KiB binary value still goes whole."""
DLQ_MAX_KEY_BYTES = 4 * 1024
"""The same for the key (ids are at most 256 characters)."""
DLQ_MAX_ERROR_CHARS = 4_000
"""The reason is cut here: a processing error's message can be as long as it likes."""
HEAD_BYTES = 1_024
"""What is kept of an oversized value or key."""


def _text(raw: bytes) -> tuple[str, str]:
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def _head(raw: bytes) -> tuple[str, str]:
    """The first `HEAD_BYTES` as text; a UTF-8 character cut at the end is dropped, not base64."""
    head = raw[:HEAD_BYTES]
    try:
        return head.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data":
            return head[: exc.start].decode("utf-8"), "utf-8"
        return base64.b64encode(head).decode("ascii"), "base64"


def _field(name: str, raw: bytes | None, limit: int) -> dict[str, Any]:
    """`name`, `name_encoding` and, when the text would pass `limit` bytes, the summary fields."""
    if raw is None:
        return {name: None, f"{name}_encoding": "null"}
    text, encoding = _text(raw)
    if len(orjson.dumps(text)) <= limit:
        return {name: text, f"{name}_encoding": encoding}
    head, encoding = _head(raw)
    return {
        name: head,
        f"{name}_encoding": encoding,
        f"{name}_truncated": True,
        f"{name}_size": len(raw),
        f"{name}_sha256": hashlib.sha256(raw).hexdigest(),
    }


def dead_letter_record(
    *,
    raw: bytes | None,
    key: bytes | None,
    error: str,
    kind: str,
    topic: str,
    partition: int,
    offset: int,
) -> dict[str, Any]:
    """The DLQ JSON document for one rejected record; value, key and reason are each capped."""
    # "replace": a lone surrogate in an exception message would make the document unencodable
    reason = error[:DLQ_MAX_ERROR_CHARS].encode("utf-8", "replace").decode("utf-8")
    return {
        "error": reason,
        "kind": kind,
        "source": {"topic": topic, "partition": partition, "offset": offset},
        **_field("key", key, DLQ_MAX_KEY_BYTES),
        **_field("value", raw, DLQ_MAX_VALUE_BYTES),
        "failed_at": time.time(),
    }


def original_bytes(doc: Mapping[str, Any], name: str = "value") -> bytes | None:
    """The original value (or key, `name="key"`) a document holds, or None for a null one.

    Raises ValueError when the document kept only the head of it (`<name>_truncated`).
    """
    if doc.get(f"{name}_truncated"):
        raise ValueError(f"the dead letter keeps only the first {HEAD_BYTES:,} bytes of its {name}")
    encoding, text = doc.get(f"{name}_encoding", "null"), doc.get(name)
    if encoding == "null" or text is None:
        return None
    if encoding == "base64":
        return base64.b64decode(str(text), validate=True)
    if encoding == "utf-8":
        return str(text).encode("utf-8")
    raise ValueError(f"unknown {name}_encoding {encoding!r}")


def _message_key(key: bytes | None, doc: dict[str, Any]) -> bytes | None:
    """The DLQ message's own key: the original, or its SHA-256 (hex) when the document cut it."""
    return str(doc["key_sha256"]).encode("ascii") if doc.get("key_truncated") else key


async def dead_letter(
    dlq: TopicT,
    raw: bytes | None,
    key: bytes | None,
    error: str,
    kind: str,
    *,
    topic: str,
    partition: int,
    offset: int,
) -> None:
    """Send one record to `dlq` with its reason; count and log it (no payload in the log).

    Never raises (bar cancellation): a failed send is counted in `llmrec_dlq_send_failures`
    and logged with the source coordinates, and the caller carries on.
    """
    metrics.DLQ.labels(source=topic, kind=kind).inc()
    log.warning("dead-letter %s %s[%d]@%d: %s", kind, topic, partition, offset, error[:300])
    try:
        doc = dead_letter_record(
            raw=raw, key=key, error=error, kind=kind,
            topic=topic, partition=partition, offset=offset,
        )  # fmt: skip
        await dlq.send(key=_message_key(key, doc), value=orjson.dumps(doc))
    except Exception as exc:  # the DLQ must never stop the stream
        metrics.DLQ_SEND_FAILURES.labels(source=topic).inc()
        log.error(  # no traceback: it could carry the payload
            "dead-letter send failed, record dropped: %s %s[%d]@%d: %s",
            kind, topic, partition, offset, type(exc).__name__,
        )  # fmt: skip


async def dead_letter_event(dlq: TopicT, event: EventT[bytes], error: str, kind: str) -> None:
    """`dead_letter` for a Faust event: source coordinates from its message."""
    msg = event.message
    await dead_letter(
        dlq, msg.value, msg.key, error, kind,
        topic=msg.topic, partition=msg.partition, offset=msg.offset,
    )  # fmt: skip


FAILURE_REASON_CHARS = 500


async def dead_letter_failure(dlq: TopicT, event: EventT[bytes], exc: BaseException) -> None:
    """`dead_letter_event` for a record whose handling raised `exc` (kind processing_error)."""
    reason = f"{type(exc).__name__}: {exc}"[:FAILURE_REASON_CHARS]
    await dead_letter_event(dlq, event, reason, "processing_error")
