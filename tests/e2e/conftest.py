"""A real `llmrec worker` subprocess against the session broker, with fresh topics and state."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from llmrec.data import Dataset, load_movielens
from workers.kafka_conn import client_kwargs
from workers.kafka_local import free_port
from workers.settings import Settings
from workers.topic_admin import assign_all, ensure_topics, topic_names
from workers.worker_proc import WorkerProcess

ENCODER_BACKEND = os.environ.get("LLMREC_E2E_ENCODER", "onnx")


class Pipeline:
    """One worker process plus Kafka helpers bound to its (unique) topics."""

    def __init__(
        self,
        bootstrap: str,
        state_dir: Path,
        unique: str,
        log_path: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        env = {
            "LLMREC_BOOTSTRAP_SERVERS": bootstrap,
            "LLMREC_STATE_DIR": str(state_dir),
            "LLMREC_TOPIC_PREFIX": f"e2e{unique}.",
            "LLMREC_APP_ID": f"e2e{unique}",
            "LLMREC_PARTITIONS": "2",
            "LLMREC_ENCODER_BACKEND": ENCODER_BACKEND,
            "LLMREC_ITEM_BATCH_WITHIN_S": "0.1",
            "LLMREC_PARK_TIMEOUT_S": "20",
            "LLMREC_RANKER_DIR": str(state_dir.parent / "ranker"),
            "LLMREC_RANKER_POLL_S": "0.5",
            **(extra_env or {}),
        }
        self.ranker_dir = state_dir.parent / "ranker"
        # The worker's own Kafka connection settings (TLS, SASL), for the test's clients too.
        kafka = {
            k.removeprefix("LLMREC_").lower(): v
            for k, v in env.items()
            if k.startswith("LLMREC_KAFKA_")
        }
        self.settings = Settings(
            bootstrap_servers=bootstrap, topic_prefix=f"e2e{unique}.", partitions=2, **kafka
        )
        self.topics = topic_names(self.settings)
        self.worker = WorkerProcess(env, log_path, free_port())
        asyncio.run(ensure_topics(self.settings))

    # -- process -------------------------------------------------------------------------------

    def start(self, timeout: float = 300.0) -> None:
        """Start the worker and wait until it is healthy (broker reachable, index loaded)."""
        self.worker.start(timeout=timeout)

    def stop(self, timeout: float = 60.0) -> None:
        self.worker.stop(timeout)

    def log_tail(self, n: int = 4000) -> str:
        return self.worker.log_tail(n)

    # -- http ----------------------------------------------------------------------------------

    def health(self) -> tuple[int, Any]:
        return self.worker.get("/health")

    def get(self, path: str) -> tuple[int, Any]:
        return self.worker.get(path, timeout=10.0)

    # -- kafka ---------------------------------------------------------------------------------

    def send(self, role: str, records: list[tuple[bytes | None, bytes | None]]) -> None:
        async def go() -> None:
            producer = AIOKafkaProducer(**client_kwargs(self.settings), linger_ms=2)
            await producer.start()
            try:
                for key, value in records:
                    await producer.send(self.topics[role], value, key=key)
                await producer.flush()
            finally:
                await producer.stop()

        asyncio.run(go())

    def send_items(self, items: list[dict[str, Any]]) -> None:
        self.send("items", [(i["item_id"].encode(), orjson.dumps(i)) for i in items])

    def send_events(self, events: list[dict[str, Any]]) -> None:
        self.send("events", [(e["user_id"].encode(), orjson.dumps(e)) for e in events])

    def wait_for(
        self, role: str, match: Callable[[dict[str, Any]], bool], timeout: float = 120.0
    ) -> dict[str, Any]:
        """The first JSON record on `role` (from the beginning) for which `match` is true."""

        async def go() -> dict[str, Any] | None:
            consumer = AIOKafkaConsumer(
                **client_kwargs(self.settings), group_id=None, auto_offset_reset="earliest",
            )  # fmt: skip
            await consumer.start()
            try:
                tps = await assign_all(consumer, self.topics[role])
                await consumer.seek_to_beginning(*tps)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    batch = await consumer.getmany(timeout_ms=200)
                    for records in batch.values():
                        for r in records:
                            if r.value is None:  # a forgotten user's tombstone
                                continue
                            doc = orjson.loads(r.value)
                            if match(doc):
                                return dict(doc)
            finally:
                await consumer.stop()
            return None

        found = asyncio.run(go())
        if found is None:
            pytest.fail(f"nothing matched on {role} in {timeout}s; worker log: {self.log_tail()}")
        return found

    def recommendation_for(self, event_id: str, timeout: float = 120.0) -> dict[str, Any]:
        return self.wait_for(
            "recommendations", lambda d: event_id in d.get("covered_event_ids", []), timeout
        )


@pytest.fixture(scope="session")
def movielens(data_dir: Path) -> Dataset:
    return load_movielens(data_dir, "ml-latest-small")


@pytest.fixture(scope="session")
def catalogue(movielens: Dataset) -> list[dict[str, Any]]:
    """A small real catalogue: 150 Sci-Fi movies and 250 movies of other genres, no Sci-Fi."""
    scifi = [m for m in movielens.movies.values() if "Sci-Fi" in m.genres][:150]
    other = [m for m in movielens.movies.values() if m.genres and "Sci-Fi" not in m.genres][:250]
    return [
        {"item_id": m.item_id, "title": m.title, "categories": list(m.genres), "ts": 0}
        for m in scifi + other
    ]


@pytest.fixture(scope="module")
def pipeline(
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
    catalogue: list[dict[str, Any]],
) -> Iterator[Pipeline]:
    """A started worker whose index holds `catalogue`; stopped at the end of the module."""
    unique = uuid.uuid4().hex[:8]
    root = tmp_path_factory.mktemp(f"worker-{unique}")
    if ENCODER_BACKEND == "onnx" and not (Settings().model_dir / "all-MiniLM-L6-v2").is_dir():
        pytest.fail("encoder artifacts missing: run the export first (or deselect -m 'not model')")
    p = Pipeline(kafka_bootstrap, root / "state", unique, root / "worker.log")
    p.send_items(catalogue)
    p.start()
    deadline = time.monotonic() + 60
    while p.health()[1].get("index_items", 0) < len(catalogue):
        if time.monotonic() > deadline:
            pytest.fail(f"catalogue not indexed: {p.health()} {p.log_tail()}")
        time.sleep(0.3)
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def make_pipeline(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Pipeline]]:
    """Build pipelines (stopped, with their logs kept) for one test."""
    made: list[Pipeline] = []

    def make(env: dict[str, str] | None = None, bootstrap: str | None = None) -> Pipeline:
        unique = uuid.uuid4().hex[:8]
        root: Path = tmp_path_factory.mktemp(f"chaos-{unique}")
        p = Pipeline(bootstrap or kafka_bootstrap, root / "state", unique, root / "worker.log", env)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()
