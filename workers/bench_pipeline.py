"""`llmrec bench pipeline`: one worker through a real broker, under many users' interleaved events.

For each catalogue size, on fresh topics and a fresh worker (the learned ranker on):
1. latency at several offered rates, lowest first, each from a quiet worker: a list received
   minus its event sent, p50/p95/p99; the worker's CPU and stage time per event; how late its
   event loop woke (`llmrec_event_loop_lag_seconds`);
2. throughput: N events produced as fast as possible; events/s = N / (last list - first send),
   and lists per event (one per event unless a user's events share a micro-batch);
3. where the time goes: the events agent's per-stage seconds (`llmrec_stage_seconds`) and the
   worker process's CPU seconds, per event, over the throughput run; the worker's CPU when
   idle (before the first rate); and a cost model fitted over all the runs, CPU per event =
   a + b / events per micro-batch, which says what batching saves and what a batch costs.
Once per run, the framework ceiling: a bare Faust agent (`workers.bench_faust`) parsing and
forwarding the same events, timed the same way (latency at the same offered rates, then
throughput); llmrec's ratio to its throughput is the figure to hold, its latency the floor.

Traffic: `interleaved` (default) sends the dataset's users round-robin, each user's own order
kept (`llmrec.data.interleave_users`); `replay` sends them in timestamp order, where a user's
burst of ratings arrives together and one list answers many events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from itertools import cycle, islice
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from rich.console import Console

from llmrec.data import Dataset, dataset_events, interleave_users, item_records, load_movielens
from workers.kafka_conn import client_kwargs
from workers.kafka_local import free_port
from workers.settings import REPO_ROOT, Settings, get_settings
from workers.topic_admin import assign_all, ensure_topics, read_to_end, topic_names
from workers.worker_proc import WorkerProcess

__all__ = ["bench_pipeline", "resolve_ranker", "traffic"]


log = logging.getLogger(__name__)
console = Console(stderr=True)


class _Watcher:
    """Consumes an output topic: arrival time per answered event id, and records received."""

    def __init__(self, bootstrap: str, topic: str, ids_of: Callable[[Any], list[str]]) -> None:
        self.bootstrap, self.topic, self.ids_of = bootstrap, topic, ids_of
        self.arrived: dict[str, float] = {}
        self.records = 0
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
                self.records += len(records)
                for r in records:
                    for event_id in self.ids_of(orjson.loads(r.value)):
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


def _covered(doc: Any) -> list[str]:
    return list(doc["covered_event_ids"])


def _forwarded(doc: Any) -> list[str]:
    return [doc["event_id"]]


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


async def _latencies(
    prod: AIOKafkaProducer, topic: str, watcher: _Watcher, events: list[dict[str, Any]], *,
    rate: float, timeout: float,
) -> list[float]:  # fmt: skip
    """Send `events` at `rate` a second; seconds from each send to its answer (the answered
    ones, after waiting up to `timeout` for all)."""
    sent = await _send_events(prod, topic, events, rate)
    await watcher.wait_count(set(sent), timeout)
    return [watcher.arrived[i] - t for i, t in sent.items() if i in watcher.arrived]


async def _timed_burst(
    prod: AIOKafkaProducer, topic: str, watcher: _Watcher, events: list[dict[str, Any]]
) -> dict[str, Any]:
    """Send `events` as fast as possible; events/s until the last one is answered."""
    records = watcher.records
    sent = await _send_events(prod, topic, events, 0)
    complete = await watcher.wait_count(set(sent), 900)
    last = max(watcher.arrived.get(i, 0.0) for i in sent)
    return {
        "events": len(events), "complete": complete,
        "events_per_s": round(len(events) / (last - min(sent.values())), 1),
        "outputs_per_event": round((watcher.records - records) / len(events), 3),
        "users": len({e["user_id"] for e in events}),
    }  # fmt: skip


async def _framework_ceiling(
    bootstrap: str, workdir: Path, partitions: int, events: list[dict[str, Any]], *,
    rates: list[float], duration: float,
) -> dict[str, Any]:  # fmt: skip
    """The bare Faust agent (`workers.bench_faust`) on the same events, timed the same way:
    its latency at each offered rate (the floor under the worker's), then its throughput."""
    unique = uuid.uuid4().hex[:8]
    src, dst = f"bench-faust-in-{unique}", f"bench-faust-out-{unique}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, partitions, 1) for t in (src, dst)])
    finally:
        await admin.close()
    env = {
        **os.environ, "BENCH_BOOTSTRAP": bootstrap, "BENCH_APP_ID": f"bench-faust-{unique}",
        "BENCH_SOURCE": src, "BENCH_SINK": dst, "BENCH_DATADIR": str(workdir / "faust-data"),
    }  # fmt: skip
    with (workdir / "faust.log").open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.bench_faust"], env=env, stdout=out,
            stderr=subprocess.STDOUT, cwd=REPO_ROOT,
        )  # fmt: skip
    prod = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1, acks=1)
    watcher = _Watcher(bootstrap, dst, _forwarded)
    await prod.start()
    await watcher.start()
    try:
        warm = [{**e, "event_id": f"fwarm-{i}"} for i, e in enumerate(events[:500])]
        await _send_events(prod, src, warm, 0)
        ids = {e["event_id"] for e in warm}
        deadline = time.monotonic() + 180
        while not await watcher.wait_count(ids, 1.0):
            if proc.poll() is not None or time.monotonic() > deadline:
                log_tail = (workdir / "faust.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the bare Faust agent did not start:\n{log_tail}")
        latency = []
        for rate in rates:
            n = int(rate * duration)
            run = [
                {**e, "event_id": f"f{rate:.0f}-{i}"}
                for i, e in enumerate(islice(cycle(events), n))
            ]
            lats = await _latencies(
                prod, src, watcher, run, rate=rate, timeout=max(60.0, 3 * duration)
            )
            latency.append({"offered_rate": rate, "events": n, "received": len(lats)} | _pcts(lats))
            console.print(f"bare Faust agent, latency at {rate:.0f}/s: {latency[-1]}")
        burst = [{**e, "event_id": f"f-{i}"} for i, e in enumerate(events)]
        return await _timed_burst(prod, src, watcher, burst) | {"latency_ms": latency}
    finally:
        await watcher.stop()
        await prod.stop()
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


async def _quiet(worker: WorkerProcess, updates_topic: str, timeout: float = 300.0) -> float:
    """Seconds until the worker has no statistics work left: no lag on `item-updates` or on its
    replica, and its folded updates and applied records unchanged for 2 s (records already
    fetched into Faust's stream buffers show no consumer lag)."""
    started = time.monotonic()
    last: tuple[float, float] | None = None
    still = 0.0
    while time.monotonic() - started < timeout:
        doc = worker.get("/health")[1] or {}
        text = _metrics_text(worker)
        now = (_metric(text, "llmrec_item_stats_updates_total"),
               _metric(text, "llmrec_item_stats_records_total"))  # fmt: skip
        idle = doc.get("stats_lag") == 0 and not doc.get("consumer_lag", {}).get(updates_topic)
        still = still + 0.5 if idle and now == last else 0.0
        if still >= 2.0:
            break
        last = now
        await asyncio.sleep(0.5)
    return time.monotonic() - started


def _metrics_text(worker: WorkerProcess) -> str:
    """The worker's /metrics page."""
    _, body = worker.get("/metrics")
    return body.decode() if isinstance(body, bytes) else str(body)


def _metric(metrics_text: str, name: str) -> float:
    """The value of an unlabelled metric (0 when absent)."""
    for line in metrics_text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[-1])
    return 0.0


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


def _histogram_over(metrics_text: str, name: str, bound: float, before: str = "") -> float:
    """How many observations of a Prometheus histogram since `before` exceeded `bound` (one
    of its buckets' `le`)."""
    buckets, _, count = _histogram(metrics_text, name)
    b0, _, c0 = _histogram(before, name)
    return (count - c0) - (buckets.get(bound, 0.0) - b0.get(bound, 0.0))


def _stage_sums(metrics_text: str, field: str = "sum") -> dict[str, float]:
    """`llmrec_stage_seconds` sums (or, with `field="count"`, micro-batches) by stage."""
    out: dict[str, float] = {}
    for line in metrics_text.splitlines():
        if line.startswith(f"llmrec_stage_seconds_{field}{{"):
            stage = line.split('stage="', 1)[1].split('"', 1)[0]
            out[stage] = float(line.rsplit(" ", 1)[-1])
    return out


async def _idle_cpu(
    worker: WorkerProcess, updates_topic: str, seconds: float = 10.0
) -> dict[str, float]:
    """The worker's CPU share (of one core) with no traffic, once quiet: what its timers,
    pollers and consumers cost before any event, to set against the cost per event."""
    await _quiet(worker, updates_topic)
    assert worker.proc is not None, "the worker is running"
    cpu, t0 = _cpu_seconds(worker.proc.pid), time.perf_counter()
    await asyncio.sleep(seconds)
    share = (_cpu_seconds(worker.proc.pid) - cpu) / (time.perf_counter() - t0)
    return {"seconds": seconds, "cpu_share": round(share, 3)}


def _cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU seconds of a process (all its threads), or of one of its threads
    (the main thread's id is the process's), from /proc."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Probe:
    """The worker's metrics and CPU time at one moment, to difference over a run."""

    def __init__(self, worker: WorkerProcess) -> None:
        self.text = _metrics_text(worker)
        assert worker.proc is not None, "the worker is running"
        self.cpu = _cpu_seconds(worker.proc.pid)
        # the event loop's thread, which runs every agent: what bounds one worker's rate (the
        # rest is Faust's consumer thread and the hnswlib and onnxruntime threads)
        self.main_cpu = _cpu_seconds(worker.proc.pid, worker.proc.pid)

    def cost_per_event(self, later: _Probe, events: int) -> dict[str, Any]:
        """Milliseconds per event: worker CPU, and wall time in each events-agent stage."""
        before, after = _stage_sums(self.text), _stage_sums(later.text)
        stages = {k: round(1e3 * (v - before.get(k, 0.0)) / events, 3) for k, v in after.items()}
        # every micro-batch that reaches ranking times "retrieve" once
        batches = _stage_sums(later.text, "count").get("retrieve", 0.0) - _stage_sums(
            self.text, "count"
        ).get("retrieve", 0.0)
        return {
            "events_per_batch": round(events / batches, 1) if batches else None,
            # a user's unchanged topics ask the index the same again: how often, in this traffic
            "index_searches_from_memory": searches_from_memory(self.text, later.text),
            "worker_cpu_ms": round(1e3 * (later.cpu - self.cpu) / events, 3),
            "main_thread_cpu_ms": round(1e3 * (later.main_cpu - self.main_cpu) / events, 3),
            "stages_wall_ms": dict(sorted(stages.items(), key=lambda kv: -kv[1])),
            "stages_total_ms": round(sum(stages.values()), 3),
        }


def searches_from_memory(before: str, after: str) -> float | None:
    """Of the index searches asked between two /metrics pages, the share the index answered
    from memory (`llmrec_index_searches_total`); None when none was asked."""
    asked = {
        answer: _metric(after, f'llmrec_index_searches_total{{answer="{answer}"}}')
        - _metric(before, f'llmrec_index_searches_total{{answer="{answer}"}}')
        for answer in ("memory", "graph")
    }
    total = sum(asked.values())
    return round(asked["memory"] / total, 3) if total else None


def cost_model(
    costs: Sequence[Mapping[str, Any]], field: str = "worker_cpu_ms"
) -> dict[str, float] | None:
    """CPU per event (`field` of `cost_per_event` figures) as `per_event_ms + per_batch_ms /
    events_per_batch`, least squares over runs at different micro-batch sizes: what one more
    event costs, and what each micro-batch costs whatever its size (polls, sends, per-call
    overheads). None with fewer than two distinct batch sizes."""
    runs = [(c["events_per_batch"], c[field]) for c in costs if c.get("events_per_batch")]
    if len({b for b, _ in runs}) < 2:
        return None
    x = np.array([[1.0, 1.0 / b] for b, _ in runs])
    y = np.array([cpu for _, cpu in runs])
    (per_event, per_batch), *_ = np.linalg.lstsq(x, y, rcond=None)
    worst = float(np.max(np.abs(x @ [per_event, per_batch] - y)))
    return {"per_event_ms": round(float(per_event), 3), "per_batch_ms": round(float(per_batch), 3),
            "worst_residual_ms": round(worst, 3), "runs": len(runs)}  # fmt: skip


async def _stats_bytes(settings: Settings, snapshot: Path) -> dict[str, float]:
    """Bytes per item of the statistics: each item's latest `item-stats` record, and the
    worker's snapshot of all of them (`stats.bin`, written when it stopped)."""
    latest: dict[bytes, int] = {}
    async for r in read_to_end(client_kwargs(settings), topic_names(settings)["item_stats"]):
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


def traffic(ds: Dataset, known: set[str], order: str, n: int) -> list[dict[str, Any]]:
    """`n` events on the catalogue's items in `order`; the stream repeats (new event ids) if
    the dataset has fewer. Interleaved, each user sends at most the median user's count of
    events, so that every part of the stream has about as many users."""
    events = [e for e in dataset_events(ds) if e["item_id"] in known]
    if order == "interleaved":
        per_user = Counter(e["user_id"] for e in events)
        events = interleave_users(events, max_per_user=int(np.median(list(per_user.values()))))
    out: list[dict[str, Any]] = []
    lap = 0
    while len(out) < n:
        out += [{**e, "event_id": f"{e['event_id']}~{lap}"} for e in events[: n - len(out)]]
        lap += 1
    return out


async def _catalogue_run(
    settings: Settings, *, worker_env: dict[str, str], workdir: Path, items: list[dict[str, Any]],
    events: list[dict[str, Any]], n_burst: int, rates: list[float], duration: float,
) -> dict[str, Any]:  # fmt: skip
    """One catalogue: the worker's throughput, cost per event and latency at each rate."""
    await ensure_topics(settings)
    names = topic_names(settings)
    prod = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=1, acks=1)
    await prod.start()
    for it in items:
        await prod.send(names["items"], orjson.dumps(it), key=it["item_id"].encode())
    await prod.flush()
    worker = WorkerProcess(worker_env, workdir / "worker.log", int(worker_env["LLMREC_WEB_PORT"]))
    result: dict[str, Any] = {}
    watcher = _Watcher(settings.bootstrap, names["recommendations"], _covered)
    try:
        t0 = time.perf_counter()
        worker.start(timeout=300)
        while (worker.get("/health")[1] or {}).get("index_items", 0) < len(items):
            await asyncio.sleep(0.5)
        ranker = (worker.get("/health")[1] or {}).get("model", {}).get("ranker")
        result["items"] = {"count": len(items), "index_ready_s": round(time.perf_counter() - t0, 1),
                           "ranker": ranker}  # fmt: skip
        console.print(f"worker ready: {len(items)} items indexed, ranker {ranker}")
        await watcher.start()
        warm = events[:500]
        await _send_events(prod, names["events"], warm, 0)
        await watcher.wait_count({e["event_id"] for e in warm}, 120)
        # Latency first, lowest rate first: a saturating run or the burst would leave work
        # behind that the next run measures (statistics queued in Faust's buffers, changelog
        # writes); each run starts from a quiet worker.
        result["idle"] = await _idle_cpu(worker, names["item_updates"])
        console.print(f"idle worker: {result['idle']}")
        result["latency_ms"] = []
        offset = len(warm)
        for rate in rates:
            settle = await _quiet(worker, names["item_updates"])
            n = int(rate * duration)
            run = events[offset : offset + n]
            offset += n
            records, before = watcher.records, _Probe(worker)
            # past saturation the backlog drains at >= 100 events/s: wait for all of it
            lats = await _latencies(
                prod, names["events"], watcher, run, rate=rate,
                timeout=max(60.0, 3 * duration, n / 100 + 30),
            )  # fmt: skip
            after = _Probe(worker)
            figures: dict[str, Any] = {
                "offered_rate": rate, "events": n, "received": len(lats),
                "lists_per_event": round((watcher.records - records) / max(n, 1), 3),
                "settle_s": round(settle, 1),
                "cost_per_event": before.cost_per_event(after, n),
            } | _pcts(lats)  # fmt: skip
            figures["stats_effect_s"] = _histogram_summary(
                after.text, "llmrec_item_stats_effect_seconds", before=before.text
            )
            # stalls: the loop woke over 100 ms late (a long batch, a collection, a snapshot)
            figures["loop_stalls_over_100ms"] = _histogram_over(
                after.text, "llmrec_event_loop_lag_seconds", 0.1, before=before.text
            )
            # the worker's own view (event's Kafka timestamp to its list's publication): what
            # the end-to-end figures add beyond it is the broker and the consumers
            figures["worker_latency_s"] = _histogram_summary(
                after.text, "llmrec_event_to_recommendation_seconds", before=before.text
            )
            figures["loop_lag_s"] = _histogram_summary(
                after.text, "llmrec_event_loop_lag_seconds", before=before.text
            )
            result["latency_ms"].append(figures)
            console.print(f"latency at {rate:.0f}/s: {figures}")
        result["settle_before_burst_s"] = round(await _quiet(worker, names["item_updates"]), 1)
        burst = events[offset : offset + n_burst]
        before = _Probe(worker)
        result["throughput"] = await _timed_burst(prod, names["events"], watcher, burst)
        result["cost_per_event"] = before.cost_per_event(_Probe(worker), len(burst))
        console.print(f"throughput: {result['throughput']}")
        console.print(f"cost per event: {result['cost_per_event']}")
        costs = [f["cost_per_event"] for f in result["latency_ms"]] + [result["cost_per_event"]]
        result["cost_model"] = {
            "process": cost_model(costs),
            "main_thread": cost_model(costs, "main_thread_cpu_ms"),
        }
        console.print(f"cost model: {result['cost_model']}")
        result["worker_health"] = worker.get("/health")[1]
    finally:
        await watcher.stop()
        await prod.stop()
        worker.stop()
    result["stats_bytes"] = await _stats_bytes(settings, workdir / "state" / "stats.bin")
    return result


async def _run(
    base: Settings, *, bootstrap: str, workdir: Path, catalogues: list[int], order: str,
    n_burst: int, rates: list[float], duration: float, encoder: str, partitions: int,
    ranker_root: Path | None,
) -> dict[str, Any]:  # fmt: skip
    ds = load_movielens(base.data_dir, "ml-latest-small")
    n_events = 500 + n_burst + int(sum(rates) * duration)
    result: dict[str, Any] = {"order": order, "catalogues": []}
    for n_items in catalogues:
        unique = uuid.uuid4().hex[:8]
        env = {
            "LLMREC_BOOTSTRAP_SERVERS": bootstrap, "LLMREC_TOPIC_PREFIX": f"bench{unique}.",
            "LLMREC_APP_ID": f"bench{unique}", "LLMREC_PARTITIONS": str(partitions),
            "LLMREC_STATE_DIR": str(workdir / unique / "state"),
            "LLMREC_ENCODER_BACKEND": encoder, "LLMREC_WEB_PORT": str(free_port()),
            **({"LLMREC_RANKER_DIR": str(ranker_root)} if ranker_root else {}),
        }  # fmt: skip
        update = {"topic_prefix": env["LLMREC_TOPIC_PREFIX"], "partitions": partitions}
        settings = base.model_copy(update={"bootstrap_servers": bootstrap, **update})
        items = list(islice(item_records(ds), n_items))
        events = traffic(ds, {i["item_id"] for i in items}, order, n_events)
        (workdir / unique).mkdir(parents=True)
        console.print(f"[bold]catalogue of {len(items)} items[/], {order} traffic")
        run = await _catalogue_run(
            settings, worker_env=env, workdir=workdir / unique, items=items, events=events,
            n_burst=n_burst, rates=rates, duration=duration,
        )  # fmt: skip
        with contextlib.suppress(OSError):
            shutil.copyfile(workdir / unique / "worker.log", workdir / f"worker-{n_items}.log")
        result["catalogues"].append(run)
        if "framework_ceiling" not in result:
            ceiling = await _framework_ceiling(
                bootstrap, workdir, partitions, events[:n_burst], rates=rates, duration=duration
            )
            console.print(f"bare Faust agent: {ceiling}")
            result["framework_ceiling"] = ceiling
        rate = run["throughput"]["events_per_s"]
        run["ratio_to_framework"] = round(rate / result["framework_ceiling"]["events_per_s"], 3)
    return result


def resolve_ranker(base: Settings, choice: str, workdir: Path) -> Path | None:
    """The ranker root the worker uses: none, a given root, the installed one, or one trained
    here on ml-latest-small (`llmrec train-ranker`)."""
    if choice == "none":
        return None
    if choice != "auto":
        return Path(choice)
    if (base.ranker_root / "current").exists():
        return base.ranker_root
    from workers.cli_ranker import train_ranker

    console.print("no ranker installed: training one on ml-latest-small for the benchmark")
    root = workdir / "ranker"
    train_ranker(dataset="ml-latest-small", out=root, max_groups=2000)
    return root


def bench_pipeline(  # noqa: PLR0917 - one positional per CLI option is typer's style
    events: int = typer.Option(10_000, help="Events for the throughput run."),
    items: str = typer.Option(
        "2000,10000", help="Catalogue sizes, comma-separated (first N ml-latest-small movies)."
    ),
    rates: str = typer.Option("100,250,500,1000", help="Offered events/s of the latency runs."),
    duration: float = typer.Option(15.0, help="Seconds of each latency run."),
    order: str = typer.Option(
        "interleaved", help="interleaved (many users, round-robin) or replay (timestamp order)."
    ),
    ranker: str = typer.Option(
        "auto", help="auto (installed, else trained here), none, or a ranker root."
    ),
    encoder: str = typer.Option("onnx", help="onnx or hashing (no model artifacts needed)."),
    partitions: int = typer.Option(2, help="Partitions of the pipeline topics."),
    bootstrap: str | None = typer.Option(
        None, help="Use this broker instead of a fresh local one."
    ),
    out: Path | None = typer.Option(  # noqa: B008
        None, help="JSON output [default: <LLMREC_HOME>/bench-results/pipeline.json]."
    ),
) -> None:
    """Benchmark one worker through the real broker; print figures and write JSON."""
    from workers.kafka_local import BrokerConfig, LocalBroker

    if order not in {"interleaved", "replay"}:
        raise typer.BadParameter("--order is interleaved or replay")
    base = get_settings()
    out = out or base.bench_dir / "pipeline.json"
    workdir = Path(tempfile.mkdtemp(prefix="llmrec-bench-"))
    broker = None
    try:
        root = resolve_ranker(base, ranker, workdir)
        if bootstrap is None:
            cfg = BrokerConfig(
                home=workdir / "kafka", lib=base.kafka_lib, port=free_port(),
                controller_port=free_port(), heap="512m",
            )  # fmt: skip
            broker = LocalBroker(cfg)
            broker.up(timeout=120)
            bootstrap = cfg.bootstrap
        run = _run(
            base, bootstrap=bootstrap, workdir=workdir,
            catalogues=[int(x) for x in items.split(",")], order=order, n_burst=events,
            rates=[float(x) for x in rates.split(",")], duration=duration, encoder=encoder,
            partitions=partitions, ranker_root=root,
        )  # fmt: skip
        result = asyncio.run(run)
    finally:
        if broker is not None:
            broker.down()
        out.parent.mkdir(parents=True, exist_ok=True)
        for log_file in workdir.glob("*.log"):  # kept beside the JSON: where the time went
            shutil.copyfile(log_file, out.with_suffix(f".{log_file.stem}.log"))
        shutil.rmtree(workdir, ignore_errors=True)
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                         "encoder": encoder, "partitions": partitions}  # fmt: skip
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    console.print_json(orjson.dumps(result).decode())
    console.print(f"wrote {out}")
