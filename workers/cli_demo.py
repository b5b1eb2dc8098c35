"""`llmrec demo`: broker up, a worker, a MovieLens replay, live recommendations, all down.

Everything it starts it stops, in reverse order, also on Ctrl-C or failure: the worker gets
SIGTERM (then SIGKILL), the broker `LocalBroker.down()`.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
import uuid
from collections import Counter
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import typer
from aiokafka import AIOKafkaConsumer
from rich.console import Console

from llmrec.data import dataset_events, item_records, load_movielens
from workers.cli_pipeline import format_recommendation, replay
from workers.kafka_conn import client_kwargs
from workers.settings import Settings, get_settings
from workers.topic_admin import assign_all, topic_names
from workers.worker_proc import WorkerProcess

__all__ = ["demo"]

log = logging.getLogger(__name__)
console = Console()


async def _show(
    settings: Settings, events: list[dict[str, Any]], titles: dict[str, str], speed: float,
    users: set[str],
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Replay events while printing each new list of the watched users; the last per user."""
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings), group_id=None, auto_offset_reset="latest"
    )
    await consumer.start()
    latest: dict[str, dict[str, Any]] = {}
    last_id = events[-1]["event_id"]
    try:
        tps = await assign_all(consumer, topic_names(settings)["recommendations"])
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        sender = asyncio.create_task(replay(settings, None, iter(events), speed=speed))
        idle_since = time.monotonic()
        finished = False
        while not finished and time.monotonic() - idle_since < 30:  # or 30 s without news
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                idle_since = time.monotonic()
                for r in records:
                    doc = orjson.loads(r.value)
                    if doc["user_id"] in users:
                        latest[doc["user_id"]] = doc
                        console.print(format_recommendation(doc, titles, width=3))
                    if last_id in doc["covered_event_ids"]:
                        finished = True  # the last event is answered
            if not sender.done():
                idle_since = time.monotonic()
        await sender
    finally:
        await consumer.stop()
    return latest


def demo(
    limit: int = typer.Option(3000, help="Events to replay (timestamp order)."),
    speed: float = typer.Option(300.0, help="Events per second (0 = as fast as possible)."),
    items: int | None = typer.Option(None, help="Catalogue size (default: all movies)."),
    users: int = typer.Option(3, help="How many of the most active users to follow."),
    encoder: str = typer.Option("onnx", help="onnx, or hashing when no model is exported."),
) -> None:
    """Start a broker and a worker, replay MovieLens, print live recommendations, stop all."""
    from workers.kafka_local import BrokerConfig, LocalBroker, free_port

    base = get_settings()
    workdir = Path(tempfile.mkdtemp(prefix="llmrec-demo-"))
    broker = LocalBroker(
        BrokerConfig(
            home=workdir / "kafka",
            lib=base.kafka_lib,
            port=free_port(),
            controller_port=free_port(),
            heap=base.kafka_heap,
        )
    )
    unique = uuid.uuid4().hex[:6]
    ds = load_movielens(base.data_dir, "ml-latest-small")
    catalogue = list(islice(item_records(ds), items))
    titles = {i["item_id"]: i["title"] for i in catalogue}
    events = [e for e in islice(dataset_events(ds), limit) if e["item_id"] in titles]
    watched = {u for u, _ in Counter(e["user_id"] for e in events).most_common(users)}
    worker: WorkerProcess | None = None
    console.rule("llmrec demo")
    try:
        console.print("starting the local Kafka broker ...")
        broker.up(timeout=120)
        bootstrap = broker.config.bootstrap
        settings = base.model_copy(
            update={"bootstrap_servers": bootstrap, "topic_prefix": f"demo{unique}."}
        )
        console.print(f"publishing {len(catalogue)} movies ...")
        asyncio.run(replay(settings, iter(catalogue), None, progress=False))
        worker = WorkerProcess(
            {
                "LLMREC_BOOTSTRAP_SERVERS": bootstrap,
                "LLMREC_TOPIC_PREFIX": settings.topic_prefix,
                "LLMREC_APP_ID": f"demo{unique}",
                "LLMREC_STATE_DIR": str(workdir / "state"),
                "LLMREC_ENCODER_BACKEND": encoder,
            },
            workdir / "worker.log",
            free_port(),
        )
        console.print(f"starting a worker (log {worker.log_path}) ...")
        worker.start(timeout=300)
        started = time.monotonic()
        while (worker.get("/health")[1] or {}).get("index_items", 0) < len(catalogue):
            if time.monotonic() - started > 600:
                raise TimeoutError("catalogue not indexed in 10 minutes")
            time.sleep(1)
        console.print(f"indexed {len(catalogue)} movies in {time.monotonic() - started:.0f} s")
        console.print(f"replaying {len(events)} events at {speed:g}/s; following {sorted(watched)}")
        latest = asyncio.run(_show(settings, events, titles, speed, watched))
        console.rule("final recommendations")
        for doc in latest.values():
            console.print(format_recommendation(doc, titles, width=10))
        _, health = worker.get("/health")
        console.print(f"worker health: {health}")
    finally:
        if worker is not None:
            code = worker.stop()
            console.print(f"worker stopped (exit {code})")
        broker.down()
        shutil.rmtree(workdir, ignore_errors=True)
        console.print("broker stopped")
