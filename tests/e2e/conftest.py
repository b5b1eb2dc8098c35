"""A real `llmrec worker` subprocess against the session broker, with fresh topics and state."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from llmrec.data import Dataset, load_movielens
from workers.kafka_local import free_port
from workers.settings import REPO_ROOT, Settings
from workers.topic_admin import assign_all, ensure_topics, topic_names

ENCODER_BACKEND = os.environ.get("LLMREC_E2E_ENCODER", "onnx")


def _get_json(url: str, timeout: float = 2.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read() or b"null")


class Pipeline:
    """One worker process plus Kafka helpers bound to its (unique) topics."""

    def __init__(self, bootstrap: str, state_dir: Path, unique: str, log_path: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "LLMREC_BOOTSTRAP_SERVERS": bootstrap,
            "LLMREC_STATE_DIR": str(state_dir),
            "LLMREC_TOPIC_PREFIX": f"e2e{unique}.",
            "LLMREC_APP_ID": f"e2e{unique}",
            "LLMREC_PARTITIONS": "2",
            "LLMREC_WEB_PORT": str(self.port),
            "LLMREC_ENCODER_BACKEND": ENCODER_BACKEND,
            "LLMREC_ITEM_BATCH_WITHIN_S": "0.1",
            "LLMREC_PARK_TIMEOUT_S": "20",
        }
        self.settings = Settings(
            bootstrap_servers=bootstrap, topic_prefix=f"e2e{unique}.", partitions=2
        )
        self.topics = topic_names(self.settings)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        asyncio.run(ensure_topics(self.settings))

    # -- process -------------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "llmrec"), "worker"],
            cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"worker exited {self.proc.returncode}: {self.log_tail()}")
            try:
                status, doc = self.health()
                if status == 200 and doc.get("index_loaded"):
                    return
            except OSError:
                pass
            time.sleep(0.3)
        pytest.fail(f"worker not healthy in {timeout}s: {self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    # -- http ----------------------------------------------------------------------------------

    def health(self) -> tuple[int, Any]:
        return _get_json(f"http://127.0.0.1:{self.port}/health")

    def get(self, path: str) -> tuple[int, Any]:
        return _get_json(f"http://127.0.0.1:{self.port}{path}", timeout=10.0)

    # -- kafka ---------------------------------------------------------------------------------

    def send(self, role: str, records: list[tuple[bytes | None, bytes | None]]) -> None:
        async def go() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=self.settings.bootstrap, linger_ms=2)
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
        self, role: str, match: Callable[[dict[str, Any]], bool], timeout: float = 30.0
    ) -> dict[str, Any]:
        """The first JSON record on `role` (from the beginning) for which `match` is true."""

        async def go() -> dict[str, Any] | None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.bootstrap, group_id=None,
                auto_offset_reset="earliest",
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

    def recommendation_for(self, event_id: str, timeout: float = 30.0) -> dict[str, Any]:
        return self.wait_for(
            "recommendations", lambda d: d.get("trigger_event_id") == event_id, timeout
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
    import uuid

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
