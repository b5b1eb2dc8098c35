"""Operator-facing pieces: JSON logs, per-partition consumer lag, build info, latency buckets."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from faust.types import TP
from pydantic import BaseModel

from llmrec.index import ItemIndex
from workers import consumer_lag, metrics
from workers.logjson import JsonFormatter, apply
from workers.logsafety import LogSafetyFilter
from workers.replica import IndexReplica, VectorRecord, encode_vector
from workers.settings import Settings

SECRET = "my review text, input_type=str, and more"


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class _Item(BaseModel):
    n: int


def _logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger("llmrec.test.logjson")
    logger.handlers[:] = [handler]
    logger.propagate = False
    return logger


def test_json_lines_carry_ts_level_logger_message_and_the_filter_still_scrubs() -> None:
    handler = _Collect()
    handler.addFilter(LogSafetyFilter())
    logger = _logger(handler)
    apply(logger, "json")
    logger.warning("item %s refused", "i1")
    try:
        _Item(n=SECRET)  # type: ignore[arg-type]
    except ValueError as exc:
        logger.error("bad record: %s", exc, exc_info=True)
    first, second = (json.loads(line) for line in handler.lines)
    assert set(first) == {"ts", "level", "logger", "message"}
    assert (first["level"], first["logger"], first["message"]) == (
        "WARNING", "llmrec.test.logjson", "item i1 refused",
    )  # fmt: skip
    assert first["ts"].endswith("+00:00")
    assert second["level"] == "ERROR"
    assert "Traceback" in second["exc"]
    assert "review text" not in handler.lines[1]
    assert "<redacted>" in second["message"]


def test_text_keeps_the_handlers_formatter() -> None:
    handler = _Collect()
    fmt = logging.Formatter("%(message)s")
    handler.setFormatter(fmt)
    apply(_logger(handler), "text")
    assert handler.formatter is fmt
    assert not isinstance(handler.formatter, JsonFormatter)


def test_the_log_format_setting_takes_text_or_json_only() -> None:
    assert Settings().log_format == "text"
    assert Settings(log_format="json").log_format == "json"
    with pytest.raises(ValueError, match="log_format"):
        Settings(log_format="xml")  # type: ignore[arg-type]


def test_lag_is_highwater_minus_committed_for_input_partitions_only() -> None:
    events = consumer_lag.input_topics()
    topic = next(t for t in events if t.endswith("events"))
    a, b, fresh = TP(topic, 0), TP(topic, 1), TP(topic, 2)
    changelog = TP("llmrec-user-state-changelog", 0)
    high = {a: 120, b: 50, changelog: 900}
    lag = consumer_lag.partition_lag(
        [a, b, fresh, changelog], {a: 100, b: 50, changelog: 1}, high.get, events
    )
    assert lag == {a: 20, b: 0}  # fresh: nothing committed yet, left out, not 0


def test_refresh_sets_one_series_per_partition_and_drops_revoked_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = next(t for t in consumer_lag.input_topics() if t.endswith("events"))
    assigned = {TP(topic, 0), TP(topic, 3)}
    consumer = SimpleNamespace(assignment=lambda: assigned, highwater=lambda tp: 10)
    monitor = SimpleNamespace(tp_committed_offsets={TP(topic, 0): 4, TP(topic, 3): 10})
    monkeypatch.setattr(consumer_lag, "app", SimpleNamespace(consumer=consumer, monitor=monitor))
    consumer_lag.refresh()
    get = metrics.REGISTRY.get_sample_value
    assert get("llmrec_consumer_lag", {"topic": topic, "partition": "0"}) == 6
    assert get("llmrec_consumer_lag", {"topic": topic, "partition": "3"}) == 0
    assigned.discard(TP(topic, 0))
    consumer_lag.refresh()
    assert get("llmrec_consumer_lag", {"topic": topic, "partition": "0"}) is None


def test_build_info_is_one_series_with_the_version_and_encoder() -> None:
    metrics.set_build_info("0.1.0", "hashing", "bow", "1")
    labels = {"version": "0.1.0", "encoder": "hashing", "variant": "bow", "encoder_version": "1"}
    assert metrics.REGISTRY.get_sample_value("llmrec_build_info", labels) == 1
    assert b"llmrec_build_info{" in metrics.render()


def test_latency_buckets_are_dense_around_the_250ms_objective() -> None:
    bounds = [b for b in metrics.LATENCY._upper_bounds if b != float("inf")]
    assert 0.25 in bounds
    near = [b for b in bounds if 0.1 <= b <= 0.5]
    assert len(near) >= 6, near


def test_index_staleness_is_served_as_a_unix_timestamp() -> None:
    assert b"llmrec_index_last_update_timestamp_seconds " in metrics.render()


async def test_the_index_replica_serves_the_newest_applied_records_kafka_time(
    tmp_path: Path,
) -> None:
    dim = 4

    async def changed(*_: object) -> None:
        return None

    replica = IndexReplica(
        kafka={}, topic="t", index=ItemIndex(dim), snapshot_dir=tmp_path,
        snapshot_every_s=60, on_change=changed,
    )  # fmt: skip

    def rec(item: str, ts_ms: int, offset: int) -> SimpleNamespace:
        value = encode_vector(VectorRecord(item, (), 0.0, np.ones(dim, np.float32)))
        return SimpleNamespace(key=item.encode(), value=value, offset=offset, timestamp=ts_ms)

    await replica._apply([rec("a", 1_700_000_002_500, 0), rec("b", 1_700_000_001_000, 1)])
    assert replica.newest_ts == 1_700_000_002.5
    assert metrics.REGISTRY.get_sample_value(
        "llmrec_index_last_update_timestamp_seconds"
    ) == pytest.approx(1_700_000_002.5)


async def test_the_index_snapshot_is_written_off_the_event_loop_one_at_a_time(
    tmp_path: Path,
) -> None:
    import asyncio
    import threading
    import time

    async def changed(*_: object) -> None:
        return None

    replica = IndexReplica(
        kafka={}, topic="t", index=ItemIndex(4), snapshot_dir=tmp_path / "index",
        snapshot_every_s=60, on_change=changed,
    )  # fmt: skip
    value = encode_vector(VectorRecord("a", (), 0.0, np.ones(4, np.float32)))
    await replica._apply([SimpleNamespace(key=b"a", value=value, offset=0, timestamp=1)])
    replica._next = {0: 1}
    saving, overlaps, threads = [0], [0], []
    save = replica.index.save

    def slow_save(*args: object) -> None:
        threads.append(threading.get_ident())
        saving[0] += 1
        overlaps[0] += saving[0] > 1
        time.sleep(0.05)  # long enough for the second snapshot to arrive meanwhile
        save(*args)  # type: ignore[arg-type]
        saving[0] -= 1

    replica.index.save = slow_save  # type: ignore[method-assign]
    aside = asyncio.create_task(replica._snapshot_aside())
    await asyncio.sleep(0.01)
    replica._next = {0: 2}  # a record applied since: the shutdown snapshot has work to do
    replica.snapshot()  # as at shutdown, on the loop, while the other runs in its thread
    await aside
    assert threads[0] != threading.get_ident()
    assert len(threads) == 2
    assert overlaps[0] == 0
    assert IndexReplica.load_snapshot(tmp_path / "index") is not None
