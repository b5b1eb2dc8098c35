"""`llmrec bench pipeline`: sustained events/s and event->recommendation latency, real broker.

Three measurements in one run, each on fresh topics:
1. throughput: N events produced as fast as possible; worker rate = N / (last rec - first send);
2. latency: events offered at a fixed rate (default 500/s); latency = recommendation received
   minus event sent, matched by the list's covered_event_ids; p50/p95/p99;
3. transport ceiling: a plain aiokafka consume->produce passthrough of N pre-loaded events in
   this process, to show how much of the budget Kafka and the Python client take.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import shutil
import tempfile
import time
import uuid
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console

from llmrec.data import dataset_events, item_records, load_movielens
from workers.settings import REPO_ROOT, Settings, get_settings
from workers.topic_admin import assign_all, ensure_topics, read_to_end, topic_names
from workers.worker_proc import WorkerProcess

__all__ = ["bench_pipeline"]

_DEFAULT_OUT = REPO_ROOT / "bench-results" / "pipeline.json"

log = logging.getLogger(__name__)
console = Console(stderr=True)


class _RecWatcher:
    """Consumes the recommendations topic; records arrival time per answered event id."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.arrived: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, auto_offset_reset="latest",
            fetch_max_wait_ms=5,
        )  # fmt: skip
        await self._consumer.start()
        tps = await assign_all(self._consumer, self.topic)
        await self._consumer.seek_to_end(*tps)
        for tp in tps:
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=50, max_records=2000)
            now = time.perf_counter()
            for records in batch.values():
                for r in records:
                    for event_id in orjson.loads(r.value)["covered_event_ids"]:
                        self.arrived[event_id] = now

    async def wait_count(self, ids: set[str], timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if len(ids - self.arrived.keys()) == 0:
                return True
            await asyncio.sleep(0.05)
        return False

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self._consumer.stop()


async def _send_events(
    producer: AIOKafkaProducer, topic: str, events: list[dict[str, Any]], rate: float
) -> dict[str, float]:
    sent: dict[str, float] = {}
    started = time.perf_counter()
    for n, ev in enumerate(events):
        if rate > 0:
            ahead = n / rate - (time.perf_counter() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
        sent[ev["event_id"]] = time.perf_counter()
        await producer.send(topic, orjson.dumps(ev), key=ev["user_id"].encode())
    await producer.flush()
    return sent


async def _passthrough(bootstrap: str, n: int, payloads: list[bytes], keys: list[bytes]) -> float:
    """Events/s of a bare consume->produce loop in one Python process (the transport ceiling)."""
    src, dst = f"bench-pt-in-{uuid.uuid4().hex[:8]}", f"bench-pt-out-{uuid.uuid4().hex[:8]}"
    prod = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1)
    await prod.start()
    try:
        for v, k in zip(payloads[:n], keys[:n], strict=True):
            await prod.send(src, v, key=k)
        await prod.flush()
        cons = AIOKafkaConsumer(
            src, bootstrap_servers=bootstrap, group_id=f"pt-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest", enable_auto_commit=True,
        )  # fmt: skip
        await cons.start()
        try:
            done = 0
            started = None
            while done < n:
                batch = await cons.getmany(timeout_ms=500, max_records=1000)
                for records in batch.values():
                    if started is None:
                        started = time.perf_counter()
                    for r in records:
                        doc = orjson.loads(r.value)  # parse + serialise, like the worker must
                        await prod.send(dst, orjson.dumps(doc), key=r.key)
                        done += 1
            await prod.flush()
            return n / (time.perf_counter() - (started or time.perf_counter()))
        finally:
            await cons.stop()
    finally:
        await prod.stop()


async def _quiet(worker: WorkerProcess, updates_topic: str, timeout: float = 300.0) -> float:
    """Seconds until the worker has no statistics update or record left to apply."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        doc = worker.get("/health")[1] or {}
        if doc.get("stats_lag") == 0 and not doc.get("consumer_lag", {}).get(updates_topic):
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - started


def _histogram(metrics_text: str, name: str) -> tuple[dict[float, float], float, float]:
    """Cumulative bucket counts by `le`, sum and count of a Prometheus histogram."""
    buckets: dict[float, float] = {}
    total = count = 0.0
    for line in metrics_text.splitlines():
        value = line.rsplit(" ", 1)[-1]
        if line.startswith(f"{name}_bucket"):
            buckets[float(line.split('le="', 1)[1].split('"', 1)[0])] = float(value)
        elif line.startswith(f"{name}_sum"):
            total = float(value)
        elif line.startswith(f"{name}_count"):
            count = float(value)
    return buckets, total, count


def _histogram_summary(metrics_text: str, name: str, before: str = "") -> dict[str, float]:
    """Count, mean and the bucket bounds holding p50/p95/p99 of a Prometheus histogram's
    growth since `before` (an upper bound on each quantile: the bucket's `le`)."""
    buckets, total, count = _histogram(metrics_text, name)
    b0, t0, c0 = _histogram(before, name)
    buckets = {le: n - b0.get(le, 0.0) for le, n in buckets.items()}
    total, count = total - t0, count - c0
    out: dict[str, float] = {"records": count, "mean": round(total / count, 4) if count else 0.0}
    for q in (0.5, 0.95, 0.99):
        out[f"p{round(q * 100)}_at_most"] = next(
            (le for le, n in sorted(buckets.items()) if count and n >= q * count), float("inf")
        )
    return out


async def _stats_bytes(settings: Settings, snapshot: Path) -> dict[str, float]:
    """Bytes per item of the statistics: each item's latest `item-stats` record, and the
    worker's snapshot of all of them (`stats.bin`, written when it stopped)."""
    latest: dict[bytes, int] = {}
    async for r in read_to_end(settings.bootstrap, topic_names(settings)["item_stats"]):
        latest[r.key] = len(r.value or b"")
    sizes = np.array(list(latest.values()) or [0])
    snap = snapshot.stat().st_size if snapshot.exists() else 0
    return {
        "items": len(latest),
        "record_bytes_mean": round(float(sizes.mean()), 1),
        "record_bytes_p99": float(np.percentile(sizes, 99)),
        "snapshot_bytes_per_item": round(snap / max(1, len(latest)), 1),
    }


def _pcts(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    a = np.asarray(values) * 1000
    return {f"p{q}": round(float(np.percentile(a, q)), 2) for q in (50, 95, 99)} | {
        "max": round(float(a.max()), 2),
        "mean": round(float(a.mean()), 2),
    }


async def _run(
    settings: Settings, *, worker_env: dict[str, str], workdir: Path, n_items: int,
    n_events: int, rate: float, duration: float,
) -> dict[str, Any]:  # fmt: skip
    ds = load_movielens(settings.data_dir, "ml-latest-small")
    items = list(islice(item_records(ds), n_items))
    known = {i["item_id"] for i in items}
    events = [e for e in dataset_events(ds) if e["item_id"] in known]
    await ensure_topics(settings)
    names = topic_names(settings)
    prod = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=1, acks=1)
    await prod.start()
    for it in items:
        await prod.send(names["items"], orjson.dumps(it), key=it["item_id"].encode())
    await prod.flush()
    worker = WorkerProcess(worker_env, workdir / "worker.log", int(worker_env["LLMREC_WEB_PORT"]))
    result: dict[str, Any] = {}
    watcher = _RecWatcher(settings.bootstrap, names["recommendations"])
    try:
        t0 = time.perf_counter()
        worker.start(timeout=300)
        while (worker.get("/health")[1] or {}).get("index_items", 0) < len(items):
            await asyncio.sleep(0.5)
        result["items"] = {"count": len(items), "index_ready_s": round(time.perf_counter() - t0, 1)}
        console.print(f"worker ready, {len(items)} items indexed")
        await watcher.start()
        # 1. throughput
        batch = [{**e, "event_id": f"tp-{i}"} for i, e in enumerate(events[:n_events])]
        warm = [
            {**e, "event_id": f"warm-{i}"} for i, e in enumerate(events[n_events : n_events + 500])
        ]
        await _send_events(prod, names["events"], warm, 0)
        await watcher.wait_count({e["event_id"] for e in warm}, 120)
        sent = await _send_events(prod, names["events"], batch, 0)
        ok = await watcher.wait_count(set(sent), 600)
        last = max(watcher.arrived.get(i, 0.0) for i in sent)
        first = min(sent.values())
        result["throughput"] = {
            "events": len(batch), "complete": ok,
            "events_per_s": round(len(batch) / (last - first), 1),
        }  # fmt: skip
        console.print(f"throughput: {result['throughput']}")
        # The latency run starts from a quiet worker: the burst's statistics updates folded
        # and replicated first (else it measures the tail of the burst).
        result["stats_settle_s"] = round(await _quiet(worker, names["item_updates"]), 1)
        # 2. latency at a fixed offered rate
        offset = n_events + 500
        n_lat = int(rate * duration)
        lat_events = [
            {**e, "event_id": f"lat-{i}"} for i, e in enumerate(events[offset : offset + n_lat])
        ]
        _, body = worker.get("/metrics")
        before = body.decode() if isinstance(body, bytes) else str(body)
        sent = await _send_events(prod, names["events"], lat_events, rate)
        await watcher.wait_count(set(sent), 120)
        lats = [watcher.arrived[i] - t for i, t in sent.items() if i in watcher.arrived]
        result["latency_ms"] = {"offered_rate": rate, "events": len(lat_events),
                                "received": len(lats)} | _pcts(lats)  # fmt: skip
        console.print(f"latency: {result['latency_ms']}")
        _, health = worker.get("/health")
        result["worker_health"] = health
        _, body = worker.get("/metrics")
        text = body.decode() if isinstance(body, bytes) else str(body)
        # over the latency run only: the histogram's growth during it
        result["stats_effect_s"] = _histogram_summary(
            text, "llmrec_item_stats_effect_seconds", before=before
        )
        console.print(f"event -> its item's statistics on the worker: {result['stats_effect_s']}")
    finally:
        await watcher.stop() if watcher._task else None
        await prod.stop()
        worker.stop()
    result["stats_bytes"] = await _stats_bytes(settings, workdir / "state" / "stats.bin")
    console.print(f"statistics size: {result['stats_bytes']}")
    # 3. transport ceiling
    payloads = [orjson.dumps({**e, "event_id": f"pt-{i}"}) for i, e in enumerate(events[:n_events])]
    keys = [e["user_id"].encode() for e in events[:n_events]]
    ceiling = await _passthrough(settings.bootstrap, len(payloads), payloads, keys)
    result["passthrough_events_per_s"] = round(ceiling, 1)
    result["ratio_worker_to_passthrough"] = round(result["throughput"]["events_per_s"] / ceiling, 3)
    return result


def bench_pipeline(  # noqa: PLR0917 - one positional per CLI option is typer's style
    events: int = typer.Option(10_000, help="Events for the throughput run."),
    items: int = typer.Option(2_000, help="Catalogue size (first N ml-latest-small movies)."),
    rate: float = typer.Option(500.0, help="Offered events/s for the latency run."),
    duration: float = typer.Option(20.0, help="Seconds of the latency run."),
    encoder: str = typer.Option("onnx", help="onnx or hashing (no model artifacts needed)."),
    partitions: int = typer.Option(2, help="Partitions of the pipeline topics."),
    bootstrap: str | None = typer.Option(
        None, help="Use this broker instead of a fresh local one."
    ),
    out: Path = typer.Option(_DEFAULT_OUT, help="JSON output."),  # noqa: B008
) -> None:
    """Benchmark one worker through the real broker; print figures and write JSON."""
    from workers.kafka_local import BrokerConfig, LocalBroker, free_port

    base = get_settings()
    workdir = Path(tempfile.mkdtemp(prefix="llmrec-bench-"))
    broker = None
    if bootstrap is None:
        cfg = BrokerConfig(
            home=workdir / "kafka", lib=base.kafka_lib, port=free_port(),
            controller_port=free_port(), heap="512m",
        )  # fmt: skip
        broker = LocalBroker(cfg)
        broker.up(timeout=120)
        bootstrap = cfg.bootstrap
    unique = uuid.uuid4().hex[:8]
    env = {
        "LLMREC_BOOTSTRAP_SERVERS": bootstrap,
        "LLMREC_TOPIC_PREFIX": f"bench{unique}.",
        "LLMREC_APP_ID": f"bench{unique}",
        "LLMREC_PARTITIONS": str(partitions),
        "LLMREC_STATE_DIR": str(workdir / "state"),
        "LLMREC_ENCODER_BACKEND": encoder,
        "LLMREC_WEB_PORT": str(free_port()),
    }
    settings = base.model_copy(
        update={
            "bootstrap_servers": bootstrap,
            "topic_prefix": env["LLMREC_TOPIC_PREFIX"],
            "partitions": partitions,
        }
    )
    try:
        result = asyncio.run(
            _run(
                settings,
                worker_env=env,
                workdir=workdir,
                n_items=items,
                n_events=events,
                rate=rate,
                duration=duration,
            )
        )
    finally:
        if broker is not None:
            broker.down()
        with contextlib.suppress(OSError):  # kept beside the JSON: where the time went
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(workdir / "worker.log", out.with_suffix(".worker.log"))
        shutil.rmtree(workdir, ignore_errors=True)
    result["machine"] = {"cpus": __import__("os").cpu_count(), "python": platform.python_version(),
                         "encoder": encoder, "partitions": partitions}  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    console.print_json(orjson.dumps(result).decode())
    console.print(f"wrote {out}")
