"""Micro-batches of user events: answered at once when the worker is idle, gathered briefly
when it is behind.

Faust's `take_events(max, within)` waits `within` after every batch unless the batch fills,
and wakes every `within` while idle. Under load that wait is what makes batches: Faust hands
the stream what its consumer thread fetched in chunks, so a batch cut the moment the last one
is answered holds one or two events (measured: 1.3-1.7 events per batch at 250-400 events/s
offered, which then saturated). When idle it only delays the event. `waiting` waits for the
next event with no timer; if events were already waiting when the last batch was answered (the
worker is behind), it lets more arrive for `gather_s` before cutting the batch; otherwise the
event is answered at once.

A pump task iterates the stream into a queue (Faust's own iteration: offsets tracked, skipped
events of an old generation acked by Faust), so the batcher never blocks on an event that
turns out to be skipped. Acks stay manual, after the batch is handled, as in `take_events`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from faust.types import EventT, StreamT

__all__ = ["waiting"]


async def waiting(
    stream: StreamT[bytes], max_size: int, gather_s: float
) -> AsyncGenerator[list[EventT[bytes]], None]:
    """Batches of `stream`'s events, at most `max_size`; each batch's events are acked when
    the caller asks for the next batch."""
    stream.enable_acks = False  # acked below, once handled
    queue: asyncio.Queue[EventT[bytes]] = asyncio.Queue(max_size)
    # what Faust has received and not yet iterated (a stream over a plain iterable has none)
    held = getattr(stream.channel, "queue", None)

    async def pump() -> None:
        async for event in stream.events():
            await queue.put(event)

    reader = asyncio.ensure_future(pump())
    try:
        while True:
            behind = not queue.empty() or (held is not None and not held.empty())
            if queue.empty():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():  # the stream ended or failed before another event
                    getter.cancel()
                    reader.result()
                    return
                batch = [getter.result()]
            else:
                batch = []
            if behind and not queue.full() and not reader.done():
                await asyncio.sleep(gather_s)
            while len(batch) < max_size and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                yield batch
            finally:
                for event in batch:
                    await stream.ack(event)
    finally:
        reader.cancel()
