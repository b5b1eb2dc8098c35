"""The one dead-letter policy: keep the original bytes, the reason and where it came from.

A bad record is validated at the edge, sent here with its reason, counted, and the stream
carries on. The DLQ value is JSON (schema: llmrec/schemas/dead_letter.json).
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

import orjson
from faust.types import EventT, TopicT

from workers import metrics

__all__ = ["dead_letter", "dead_letter_record"]

log = logging.getLogger(__name__)


def _payload(raw: bytes | None) -> tuple[str | None, str]:
    if raw is None:
        return None, "null"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


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
    """The DLQ JSON document for one rejected record."""
    value, value_encoding = _payload(raw)
    key_text, key_encoding = _payload(key)
    return {
        "error": error,
        "kind": kind,
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "key": key_text,
        "key_encoding": key_encoding,
        "value": value,
        "value_encoding": value_encoding,
        "failed_at": time.time(),
    }


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
    """Send one record to `dlq` with its reason; count and log it (no payload in the log)."""
    doc = dead_letter_record(
        raw=raw, key=key, error=error, kind=kind, topic=topic, partition=partition, offset=offset
    )
    metrics.DLQ.labels(source=topic, kind=kind).inc()
    log.warning("dead-letter %s %s[%d]@%d: %s", kind, topic, partition, offset, error[:300])
    await dlq.send(key=key, value=orjson.dumps(doc))


async def dead_letter_event(dlq: TopicT, event: EventT[bytes], error: str, kind: str) -> None:
    """`dead_letter` for a Faust event: source coordinates from its message."""
    msg = event.message
    await dead_letter(
        dlq, msg.value, msg.key, error, kind,
        topic=msg.topic, partition=msg.partition, offset=msg.offset,
    )  # fmt: skip
