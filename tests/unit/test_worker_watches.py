"""What the worker guards and watches in the libraries under it: offsets Faust skips, GC
pauses."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import weakref
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

import workers.app  # noqa: F401  (installs the watch)
from workers import gcwatch, metrics, offsets


class _Thread:
    """Stands in for Faust's consumer thread: records the seeks it is asked to run."""

    def __init__(self) -> None:
        self.seeks: list[tuple[TP, int]] = []

    def _ensure_consumer(self) -> SimpleNamespace:
        return SimpleNamespace(seek=lambda tp, offset: self.seeks.append((tp, offset)))

    async def call_thread(self, fun: Any) -> Any:
        return await fun()


def _consumer(tp: TP) -> SimpleNamespace:
    reads = offsets.ReadOffsets()
    reads[tp] = 4
    return SimpleNamespace(
        _committed_offset={tp: None}, _gap=defaultdict(IntervalTree), _read_offset=reads,
        _thread=_Thread(),
    )  # fmt: skip


def test_a_gap_on_events_is_fetched_again_not_committed(caplog: pytest.LogCaptureFixture) -> None:
    tp = TP("llmrec.events", 1)
    fake = _consumer(tp)
    with caplog.at_level(logging.WARNING):
        asyncio.run(Consumer._add_gap(fake, tp, 5, 9))  # type: ignore[arg-type]
    assert fake._thread.seeks == [(tp, 5)]
    assert not fake._gap[tp]  # never recorded: the commit cannot pass offsets 5..9
    assert [r.levelno for r in caplog.records if "fetching them again" in r.message] == [
        logging.ERROR
    ]
    reads = fake._read_offset
    # Faust's drain loop stores the offset it just delivered (10) and any fetched before the
    # seek (11): both read as 4, so the refetched 5.. pass its "offset >= last read" check.
    reads[tp] = 10
    asyncio.run(Consumer._add_gap(fake, tp, 5, 10))  # type: ignore[arg-type]
    reads[tp] = 11
    assert reads[tp] == 4
    assert fake._thread.seeks == [(tp, 5)]
    assert not fake._gap[tp]
    reads[tp] = 5  # the first refetched record is through: reads move on again
    reads[tp] = 6
    assert reads[tp] == 6
    assert not reads.refetching


def test_a_refetch_that_never_arrives_is_given_up_as_faust_would(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tp = TP("llmrec.events", 0)
    fake = _consumer(tp)
    asyncio.run(Consumer._add_gap(fake, tp, 5, 9))  # type: ignore[arg-type]
    clock = time.monotonic() + 61.0
    monkeypatch.setattr(offsets, "monotonic", lambda: clock)
    before = metrics.SKIPPED_OFFSETS.labels(topic="llmrec.events")._value.get()
    with caplog.at_level(logging.WARNING):
        asyncio.run(Consumer._add_gap(fake, tp, 5, 20))  # type: ignore[arg-type]
    assert metrics.SKIPPED_OFFSETS.labels(topic="llmrec.events")._value.get() - before == 16
    assert [r.levelno for r in caplog.records if "not delivered" in r.message] == [logging.ERROR]
    assert fake._gap[tp].overlaps(5, 21)
    assert not fake._read_offset.refetching


def test_a_gap_on_a_compacted_topic_is_committed_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tp = TP("llmrec.item-stats", 1)
    fake = _consumer(tp)
    with caplog.at_level(logging.WARNING):
        asyncio.run(Consumer._add_gap(fake, tp, 5, 9))  # type: ignore[arg-type]
    assert fake._thread.seeks == []
    assert fake._gap[tp].overlaps(5, 10)
    assert [r.levelno for r in caplog.records if "not delivered" in r.message] == [logging.WARNING]


def test_seeking_to_committed_offsets_ends_any_refetch() -> None:
    tp = TP("llmrec.events", 1)
    reads = offsets.ReadOffsets()
    reads.hold(tp, 5)
    reads.update({tp: 3})  # Faust's perform_seek after a rebalance
    reads[tp] = 9
    assert reads[tp] == 9
    assert not reads.refetching


def test_garbage_collections_are_timed() -> None:
    gcwatch.install()
    gcwatch.install()  # idempotent: one hook
    try:
        assert sum(getattr(cb, "_llmrec", False) for cb in gc.callbacks) == 1
        full = metrics.GC_PAUSE.labels(generation="2")
        before = full._sum.get()
        gc.collect()
        assert full._sum.get() > before
    finally:
        gcwatch.uninstall()
    assert not any(getattr(cb, "_llmrec", False) for cb in gc.callbacks)


def test_what_is_loaded_is_frozen_out_of_collections_but_still_freed() -> None:
    class Node:
        pass

    loaded = [Node() for _ in range(1000)]
    try:
        frozen = gcwatch.freeze()
        assert frozen >= 1000
        assert gc.get_freeze_count() == frozen
        tracked = {id(o) for o in gc.get_objects()}
        assert id(loaded[0]) not in tracked  # a full collection no longer walks it
        gone = weakref.ref(loaded.pop())
        assert gone() is None  # freed by its last reference all the same
    finally:
        gc.unfreeze()
