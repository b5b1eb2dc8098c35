"""Item path: items -> encoder (micro-batches) -> compacted `item-vectors`.

Items are encoded once, by the worker that owns the item's partition; every worker's replica
(`workers.replica`) then applies the vector. Encoding runs in a thread so the event loop keeps
serving user events; the index itself is only written by the replica.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from faust.types import EventT, StreamT

from llmrec.events import ItemRecord, parse_item
from llmrec.exceptions import InvalidRecordError
from llmrec.items import item_text
from workers import metrics, topics
from workers.agents.runtime import Runtime
from workers.app import app
from workers.dlq import dead_letter_event
from workers.replica import VectorRecord, encode_vector

__all__ = ["encode_batch", "items_agent"]


async def encode_batch(rt: Runtime, batch: Sequence[EventT[bytes]]) -> None:
    """Parse a batch, encode the live items in one call, publish vectors and tombstones."""
    latest: dict[str, ItemRecord | None] = {}
    for event in batch:
        msg = event.message
        if msg.value is None:
            if msg.key:
                latest[msg.key.decode("utf-8", "replace")] = None
            continue
        try:
            rec = parse_item(msg.value)
        except InvalidRecordError as exc:
            await dead_letter_event(topics.items_dlq, event, exc.reason, "invalid")
            continue
        latest[rec.item_id] = None if rec.deleted else rec  # last write in a batch wins
    live = [(i, r) for i, r in latest.items() if r is not None]
    if live:
        texts = [item_text(r.title, r.categories, r.tags, r.description) for _, r in live]
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        vectors = await loop.run_in_executor(None, rt.encoder.encode, texts)
        metrics.ENCODE_SECONDS.observe(time.perf_counter() - started)
        metrics.ENCODE_BATCH.observe(len(texts))
        for (item_id, r), vec in zip(live, vectors, strict=True):
            value = encode_vector(VectorRecord(r.title, tuple(r.categories), r.ts, vec))
            await topics.item_vectors.send(key=item_id.encode(), value=value)
    for item_id, maybe in latest.items():
        if maybe is None:
            await topics.item_vectors.send(key=item_id.encode(), value=None)


@app.agent(topics.items)
async def items_agent(stream: StreamT[bytes]) -> None:
    rt = await Runtime.get()
    settings = rt.settings
    async for batch in stream.take_events(  # type: ignore[attr-defined]  # not in StreamT
        settings.item_batch_size, within=settings.item_batch_within_s
    ):
        await encode_batch(rt, batch)
