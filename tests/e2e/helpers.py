"""Helpers for tests that run real worker processes (end-to-end and chaos tiers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from tests.e2e.conftest import Pipeline
from workers.kafka_conn import client_kwargs
from workers.topic_admin import assign_all
from workers.worker_proc import WorkerProcess

__all__ = ["HASHING", "chaos_catalogue", "collect", "metric", "start_indexed", "wait_indexed"]

HASHING = {"LLMREC_ENCODER_BACKEND": "hashing"}


def chaos_catalogue(n: int = 120) -> list[dict[str, Any]]:
    genres = ["Sci-Fi", "Drama", "Comedy", "Horror", "Romance", "Documentary"]
    return [
        {
            "item_id": f"c{i}",
            "title": f"Item {i} about {genres[i % len(genres)].lower()} things",
            "categories": [genres[i % len(genres)]],
            "ts": 0,
        }
        for i in range(n)
    ]


def wait_indexed(p: Pipeline, n: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while (p.health()[1] or {}).get("index_items", 0) < n:
        if time.monotonic() > deadline:
            pytest.fail(f"catalogue not indexed: {p.health()} {p.log_tail()}")
        time.sleep(0.3)


def start_indexed(p: Pipeline, catalogue: list[dict[str, Any]]) -> None:
    """Send `catalogue` to the items topic, start the worker, and wait until it indexed all."""
    p.send_items(catalogue)
    p.start()
    wait_indexed(p, len(catalogue))


def collect(
    p: Pipeline,
    role: str,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout: float,
    *,
    with_timestamps: bool = False,
) -> list[dict[str, Any]]:
    """Every JSON record on `role` from the beginning, read until `done(records)` or timeout.

    With `with_timestamps`, each record gets `_kafka_ts` (the broker's append time, seconds).
    """

    async def go() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(
            **client_kwargs(p.settings), group_id=None,
            auto_offset_reset="earliest", fetch_max_bytes=32 * 1024 * 1024,
        )  # fmt: skip
        await consumer.start()
        out: list[dict[str, Any]] = []
        try:
            tps = await assign_all(consumer, p.topics[role])
            await consumer.seek_to_beginning(*tps)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=300, max_records=5000)
                for records in batch.values():
                    for r in records:
                        if r.value is None:  # a forgotten user's tombstone
                            continue
                        doc = orjson.loads(r.value)
                        if with_timestamps:
                            doc["_kafka_ts"] = r.timestamp / 1000.0
                        out.append(doc)
                if not batch and done(out):
                    return out
        finally:
            await consumer.stop()
        return out

    return asyncio.run(go())


def metric(p: Pipeline | WorkerProcess, name: str) -> float:
    """Sum of a Prometheus metric's samples on the worker's /metrics (0 when absent)."""
    status, body = p.get("/metrics")
    assert status == 200
    text = body.decode() if isinstance(body, bytes) else str(body)
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head, _, value = line.rpartition(" ")
            if head.split("{")[0] == name:
                total += float(value)
    return total
