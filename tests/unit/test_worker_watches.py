"""What the worker watches in the libraries under it: offsets Faust skips, GC pauses."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections import defaultdict
from types import SimpleNamespace

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

import workers.app  # noqa: F401  (installs the watch)
from workers import gcwatch, metrics


def test_a_gap_on_events_is_an_error_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    tp = TP("llmrec.events", 1)
    fake = SimpleNamespace(_committed_offset={tp: None}, _gap=defaultdict(IntervalTree))
    before = metrics.SKIPPED_OFFSETS.labels(topic="llmrec.events")._value.get()
    with caplog.at_level(logging.WARNING):
        asyncio.run(Consumer._add_gap(fake, tp, 5, 9))  # type: ignore[arg-type]
    after = metrics.SKIPPED_OFFSETS.labels(topic="llmrec.events")._value.get()
    assert after - before == 5
    assert [r.levelno for r in caplog.records if "not delivered" in r.message] == [logging.ERROR]
    assert fake._gap[tp].overlaps(5, 10)  # Faust's own bookkeeping still runs


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
