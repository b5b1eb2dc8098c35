"""`llmrec eval --through-kafka`: Protocol B through the real pipeline, with N worker processes.

A fresh local broker, N `llmrec worker` processes in one consumer group (no learned ranker: the
linear fusion ranks, as offline), the catalogue sent and indexed, then every event sent in
time order at `rate` events/s, keyed by user. The published lists are read back and scored
prequentially (`llmrec.eval.published`) on the same checked events as the offline Protocol B,
which is run alongside with the same encoder and the same (default) engine configuration.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console

from llmrec.data.contract import ContractDataset
from llmrec.engine import EngineConfig
from llmrec.eval.data import build_index
from llmrec.eval.protocol_b import event_stream, prequential
from llmrec.eval.published import PublishedList, score_published
from llmrec.eval.stats import paired_bootstrap
from llmrec.events import Event
from llmrec.types import TextEncoder
from workers.kafka_local import BrokerConfig, LocalBroker, free_port
from workers.settings import Settings
from workers.topic_admin import assign_all, ensure_topics, topic_names
from workers.worker_proc import WorkerProcess

__all__ = ["KafkaEvalConfig", "eval_through_kafka"]

console = Console(stderr=True)


@dataclass(frozen=True, slots=True)
class KafkaEvalConfig:
    workers: int = 1
    partitions: int = 4
    rate: float = 300.0
    """Events/s offered, in time order; the published lists depend on it (micro-batching)."""
    variant: str = "int8"
    backend: str = "onnx"
    """The workers' encoder backend: onnx, or hashing (tests); the offline replay uses the
    encoder it is given, which must be the same."""
    encoder_version: str | None = None
    user_fraction: float = 0.2
    max_checks: int = 2000
    settle_s: float = 60.0
    """How long to wait for lists once every event is sent and no new list arrives."""


def eval_through_kafka(
    ds: ContractDataset, encoder: TextEncoder, base: Settings, config: KafkaEvalConfig
) -> dict[str, Any]:
    """Replay `ds` through a real broker and `config.workers` workers; score both ways."""
    index, _ = build_index(ds, list(ds.items), encoder)
    stream = event_stream(ds, index)
    published: dict[int, bool | None] = {}
    offline = prequential(
        ds, EngineConfig(), index, encoder, user_fraction=config.user_fraction,
        max_checks=config.max_checks, published_out=published,
    )  # fmt: skip
    console.print(f"offline Protocol B: HR@10 {offline.hybrid_hr:.4f} over {offline.checked}")
    workdir = Path(tempfile.mkdtemp(prefix="llmrec-evalk-"))
    broker = LocalBroker(
        BrokerConfig(
            home=workdir / "kafka", lib=base.kafka_lib, port=free_port(),
            controller_port=free_port(), heap="512m",
        )
    )  # fmt: skip
    try:
        broker.up(timeout=600)
        run = asyncio.run(
            _through(ds, stream, base, broker.config.bootstrap, workdir=workdir, config=config)
        )
    finally:
        broker.down()
        shutil.rmtree(workdir, ignore_errors=True)
    # Protocol B's checked positions are the keys the offline replay filled.
    score = score_published(stream, sorted(published), run.pop("lists"))
    # Paired on the checks where both the pipeline and the offline replay had published a list.
    common = sorted(n for n in score.hit_at if published.get(n) is not None)
    a = np.array([score.hit_at[n] for n in common], dtype=np.float64)
    b = np.array([bool(published[n]) for n in common], dtype=np.float64)
    ci = paired_bootstrap(a, b)
    offline_published = [v for v in published.values() if v is not None]
    return {
        "dataset": ds.name,
        "workers": config.workers,
        "partitions": config.partitions,
        "rate": config.rate,
        "events": len(stream),
        "checked": score.checked,
        "no_list_before": score.no_list,
        "through_kafka_hr": score.hr,
        "paired_checks": len(common),
        "through_kafka_hr_paired": float(a.mean()) if len(a) else 0.0,
        "offline_published_hr_paired": float(b.mean()) if len(b) else 0.0,
        "offline_published_hr": float(np.mean(offline_published)) if offline_published else 0.0,
        "offline_fresh_hr": offline.hybrid_hr,
        "offline_popular_hr": offline.popular_hr,
        "difference_ci95": ci.as_dict(),
        **run,
    }


async def _through(
    ds: ContractDataset, stream: Sequence[Event], base: Settings, bootstrap: str, *,
    workdir: Path, config: KafkaEvalConfig,
) -> dict[str, Any]:  # fmt: skip
    unique = uuid.uuid4().hex[:8]
    settings = base.model_copy(
        update={"bootstrap_servers": bootstrap, "topic_prefix": f"evalk{unique}.",
                "partitions": config.partitions}
    )  # fmt: skip
    await ensure_topics(settings)
    names = topic_names(settings)
    env = {
        "LLMREC_BOOTSTRAP_SERVERS": bootstrap,
        "LLMREC_TOPIC_PREFIX": settings.topic_prefix,
        "LLMREC_APP_ID": f"evalk{unique}",
        "LLMREC_PARTITIONS": str(config.partitions),
        "LLMREC_ENCODER_VARIANT": config.variant,
        "LLMREC_ENCODER_BACKEND": config.backend,
        "LLMREC_RANKER_DIR": str(workdir / "no-ranker"),
        "LLMREC_PARK_TIMEOUT_S": "300",
        **({"LLMREC_ENCODER_VERSION": config.encoder_version} if config.encoder_version else {}),
    }
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1)
    await producer.start()
    workers = [
        WorkerProcess(
            {**env, "LLMREC_STATE_DIR": str(workdir / f"s{w}")}, workdir / f"w{w}.log", free_port()
        )
        for w in range(config.workers)
    ]
    try:
        for rec in ds.items.values():
            await producer.send(
                names["items"], rec.model_dump_json(exclude_none=True).encode(),
                key=rec.item_id.encode(),
            )  # fmt: skip
        await producer.flush()
        started = time.monotonic()
        for w in workers:
            w.start(timeout=600)
        for w in workers:
            while (w.get("/health")[1] or {}).get("index_items", 0) < len(ds.items):
                await asyncio.sleep(0.5)
        ready_s = time.monotonic() - started
        console.print(f"{len(workers)} worker(s) ready in {ready_s:.0f} s; sending {len(stream)}")
        t0 = time.monotonic()
        for n, ev in enumerate(stream):
            ahead = t0 + n / config.rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
            await producer.send(
                names["events"], ev.model_dump_json(exclude_none=True).encode(),
                key=ev.user_id.encode(),
            )  # fmt: skip
        await producer.flush()
        send_s = time.monotonic() - t0
        lists, answered = await _collect(
            bootstrap, names["recommendations"], {e.event_id for e in stream}, config.settle_s
        )
        done_s = time.monotonic() - t0
    finally:
        await producer.stop()
        for w in workers:
            w.stop()
    return {
        "lists": lists,
        "lists_published": len(lists),
        "events_answered": answered,
        "send_seconds": round(send_s, 1),
        "seconds_to_last_list": round(done_s, 1),
        "workers_ready_seconds": round(ready_s, 1),
    }


async def _collect(
    bootstrap: str, topic: str, want: set[str], settle_s: float
) -> tuple[list[PublishedList], int]:
    """Every list on `topic`, read until all of `want` is answered or nothing new comes."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
        fetch_max_bytes=32 * 1024 * 1024,
    )  # fmt: skip
    await consumer.start()
    lists: list[PublishedList] = []
    answered: set[str] = set()
    try:
        tps = await assign_all(consumer, topic)
        await consumer.seek_to_beginning(*tps)
        quiet_since = time.monotonic()
        while want - answered and time.monotonic() - quiet_since < settle_s:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            if batch:
                quiet_since = time.monotonic()
            for records in batch.values():
                for r in records:
                    doc = orjson.loads(r.value)
                    covered = doc["covered_event_ids"]
                    answered.update(covered)
                    items = [i["item_id"] for i in doc["items"]]
                    lists.append(PublishedList(doc["user_id"], covered, items))
    finally:
        await consumer.stop()
    return lists, len(answered & want)
