"""The worker logs and counts offsets Faust would commit without delivering them."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from types import SimpleNamespace

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

import workers.app  # noqa: F401  (installs the watch)
from workers import metrics


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
