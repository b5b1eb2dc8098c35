"""`workers.agents.batches.waiting`: micro-batches answered at once when idle, gathered when
behind, acked once handled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from workers.agents.batches import waiting


class _Channel:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()


class _Stream:
    """Faust's stream as `waiting` uses it: one event per loop turn from its channel's queue,
    a `None` in it ends the stream, an exception in it is raised by the iteration."""

    def __init__(self) -> None:
        self.channel = _Channel()
        self.enable_acks = True
        self.acked: list[object] = []

    async def events(self) -> AsyncIterator[object]:
        while True:
            await asyncio.sleep(0)  # as Faust's iteration does before each event
            item = await self.channel.queue.get()
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    async def ack(self, event: object) -> bool:
        self.acked.append(event)
        return True


def _run(
    stream: _Stream, max_size: int, arrivals: list[list[object]], gather_s: float = 0.01
) -> list[list[object]]:
    """Batches seen, with `arrivals[i]` put on the channel while batch i is handled (the
    first before the batcher starts), and the acks checked at each batch."""

    async def main() -> list[list[object]]:
        for item in arrivals[0]:
            stream.channel.queue.put_nowait(item)
        seen: list[list[object]] = []
        handled: list[object] = []
        async for batch in waiting(stream, max_size, gather_s):  # type: ignore[arg-type]
            assert stream.acked == handled  # earlier batches acked, this one not yet
            seen.append(list(batch))
            handled += batch
            for item in arrivals[len(seen)] if len(seen) < len(arrivals) else []:
                stream.channel.queue.put_nowait(item)
        assert stream.acked == handled
        return seen

    return asyncio.run(asyncio.wait_for(main(), 5))


def test_a_batch_is_everything_already_waiting() -> None:
    stream = _Stream()
    seen = _run(stream, 256, [[1, 2, 3, 4, 5], [6, 7], [None]])
    assert seen == [[1, 2, 3, 4, 5], [6, 7]]
    assert stream.enable_acks is False  # acks are the batcher's


def test_a_batch_holds_at_most_max_size() -> None:
    seen = _run(_Stream(), 2, [[1, 2, 3, 4, 5, None]])
    assert seen == [[1, 2], [3, 4], [5]]


def test_a_lone_event_is_answered_without_waiting_for_more() -> None:
    async def main() -> tuple[list[object], float]:
        stream = _Stream()
        batches = waiting(stream, 256, 5.0)  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, stream.channel.queue.put_nowait, 1)  # finds the batcher idle
        start = loop.time()
        first = await batches.__anext__()
        took = loop.time() - start
        await batches.aclose()
        return list(first), took

    first, took = asyncio.run(main())
    assert first == [1]
    assert took < 1.0  # idle: not held for the 5 s gathering window


def test_a_failing_stream_raises_after_its_events_are_handled() -> None:
    stream = _Stream()
    seen: list[list[object]] = []

    async def main() -> None:
        for item in (1, 2, RuntimeError("broker gone")):
            stream.channel.queue.put_nowait(item)
        async for batch in waiting(stream, 256, 0.01):  # type: ignore[arg-type]
            seen.append(list(batch))

    with pytest.raises(RuntimeError, match="broker gone"):
        asyncio.run(asyncio.wait_for(main(), 5))
    assert seen == [[1, 2]]
    assert stream.acked == [1, 2]


def test_when_behind_a_batch_gathers_what_arrives_within_the_window() -> None:
    """Events waiting after a batch mean the worker is behind: the next batch also takes what
    arrives in the next `gather_s`; an event that finds the worker idle goes alone."""

    async def main() -> list[list[object]]:
        stream = _Stream()
        loop = asyncio.get_running_loop()
        put = stream.channel.queue.put_nowait
        seen: list[list[object]] = []
        put(1)
        async for batch in waiting(stream, 256, 0.2):  # type: ignore[arg-type]
            got: list[object] = list(batch)
            seen.append(got)
            if got == [1]:  # idle when 1 came: alone, then 2 is waiting when it is answered
                put(2)
                loop.call_later(0.05, put, 3)  # within the window of 2's batch
            elif 3 in got:
                loop.call_later(0.05, put, None)
        return seen

    assert asyncio.run(asyncio.wait_for(main(), 5)) == [[1], [2, 3]]
