"""Item path: items -> encoder (micro-batches) -> compacted `item-vectors`.

Items are encoded once, by the worker that owns the item's partition; every worker's replica
(`workers.replica`) then applies the vector. Encoding runs in a thread so the event loop keeps
serving user events; the index itself is only written by the replica.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from faust.types import EventT, StreamT

from llmrec.events import ItemRecord, parse_item
from llmrec.exceptions import InvalidRecordError
from llmrec.items import item_text
from llmrec.types import Vector
from workers import metrics, topics
from workers.agents.runtime import Runtime
from workers.app import app
from workers.dlq import dead_letter_event, dead_letter_failure
from workers.replica import VectorRecord, encode_vector

__all__ = ["encode_batch", "items_agent"]

log = logging.getLogger(__name__)


async def encode_batch(rt: Runtime, batch: Sequence[EventT[bytes]]) -> None:
    """Parse a batch, encode the live items in one call, publish vectors and tombstones.

    Never raises: a record that cannot be parsed, encoded or published goes to `items.dlq`
    with its reason, and only that record.
    """
    latest: dict[str, tuple[ItemRecord | None, EventT[bytes]]] = {}
    for event in batch:
        msg = event.message
        if msg.value is None:
            if msg.key:
                latest[msg.key.decode("utf-8", "replace")] = (None, event)
            continue
        try:
            rec = parse_item(msg.value)
        except InvalidRecordError as exc:
            await dead_letter_event(topics.items_dlq, event, exc.reason, "invalid")
            continue
        except Exception as exc:  # costs this record only
            await _failed(event, exc)
            continue
        latest[rec.item_id] = (None if rec.deleted else rec, event)  # last write in a batch wins
    live = [(i, r, e) for i, (r, e) in latest.items() if r is not None]
    vectors = await _encode(rt, [r for _, r, _ in live])
    for (item_id, r, event), vec in zip(live, vectors, strict=True):
        if isinstance(vec, Exception):
            await _failed(event, vec)
            continue
        try:
            value = encode_vector(VectorRecord(r.title, tuple(r.categories), r.ts, vec))
            await topics.item_vectors.send(key=item_id.encode(), value=value)
        except Exception as exc:  # costs this record only
            await _failed(event, exc)
    for item_id, (maybe, event) in latest.items():
        if maybe is None:
            try:
                await topics.item_vectors.send(key=item_id.encode(), value=None)
            except Exception as exc:  # costs this record only
                await _failed(event, exc)


async def _encode(rt: Runtime, records: Sequence[ItemRecord]) -> list[Vector | Exception]:
    """The records' vectors in one encoder call; if that fails, one call per record, so a text
    the encoder chokes on costs only its own item."""
    if not records:
        return []
    texts = [item_text(r.title, r.categories, r.tags, r.description) for r in records]
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    try:
        vectors = await loop.run_in_executor(None, rt.encoder.encode, texts)
    except Exception:  # retried one by one below
        log.error("item batch encoding failed; encoding one by one", exc_info=True)
        out: list[Vector | Exception] = []
        for text in texts:
            try:
                out.append((await loop.run_in_executor(None, rt.encoder.encode, [text]))[0])
            except Exception as exc:  # reported per record by the caller
                out.append(exc)
        return out
    metrics.ENCODE_SECONDS.observe(time.perf_counter() - started)
    metrics.ENCODE_BATCH.observe(len(texts))
    return list(vectors)


async def _failed(event: EventT[bytes], exc: Exception) -> None:
    log.error("item record failed: %s", type(exc).__name__, exc_info=exc)
    await dead_letter_failure(topics.items_dlq, event, exc)


@app.agent(topics.items)
async def items_agent(stream: StreamT[bytes]) -> None:
    rt = await Runtime.get()
    settings = rt.settings
    async for batch in stream.take_events(  # type: ignore[attr-defined]  # not in StreamT
        settings.item_batch_size, within=settings.item_batch_within_s
    ):
        await encode_batch(rt, batch)
