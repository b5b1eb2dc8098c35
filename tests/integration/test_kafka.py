"""The real broker: lifecycle, an aiokafka round trip, and a real Faust worker process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from llmrec.exceptions import BrokerError
from workers.kafka_local import BrokerConfig, LocalBroker, free_port, kafka_answers

pytestmark = pytest.mark.kafka


async def _create_topics(bootstrap: str, *names: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, num_partitions=1, replication_factor=1) for n in names]
        )
    finally:
        await admin.close()


async def _read(
    bootstrap: str,
    topic: str,
    group: str,
    n: int,
    *,
    timeout: float,
    give_up: Callable[[], bool] = lambda: False,
) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest"
    )
    await consumer.start()
    got: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline and not give_up():
            batch = await consumer.getmany(timeout_ms=500)
            got.extend(m.value or b"" for msgs in batch.values() for m in msgs)
    finally:
        await consumer.stop()
    return got


def test_broker_answers_kafka_protocol(kafka_broker: LocalBroker) -> None:
    status = kafka_broker.status()
    assert status.running
    assert status.answering
    assert kafka_answers(kafka_broker.config.host, kafka_broker.config.port)


def test_up_again_is_harmless(kafka_broker: LocalBroker) -> None:
    pid = kafka_broker.pid()
    assert kafka_broker.up(timeout=10).pid == pid


def test_up_refuses_a_taken_port(kafka_broker: LocalBroker, tmp_path: Path) -> None:
    other = LocalBroker(
        BrokerConfig(
            home=tmp_path,
            lib=kafka_broker.config.lib,
            port=kafka_broker.config.port,
            controller_port=kafka_broker.config.controller_port,
        )
    )
    with pytest.raises(BrokerError, match="is taken"):
        other.up(timeout=5)
    assert not other.down()


async def test_produce_consume_round_trip(kafka_bootstrap: str, unique: str) -> None:
    topic = f"roundtrip-{unique}"
    await _create_topics(kafka_bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for n in range(20):
            await producer.send(topic, orjson.dumps({"n": n}), key=str(n % 3).encode())
        await producer.flush()
    finally:
        await producer.stop()
    values = await _read(kafka_bootstrap, topic, f"g-{unique}", 20, timeout=120)
    assert [orjson.loads(v)["n"] for v in values] == list(range(20))


async def test_real_faust_worker_consumes_and_produces(
    kafka_bootstrap: str, unique: str, repo_root: Path, tmp_path: Path
) -> None:
    source, sink = f"echo-in-{unique}", f"echo-out-{unique}"
    await _create_topics(kafka_bootstrap, source, sink)
    env = {
        **os.environ,
        "ECHO_APP_ID": f"echo-{unique}",
        "ECHO_BOOTSTRAP": kafka_bootstrap,
        "ECHO_IN": source,
        "ECHO_OUT": sink,
        "PYTHONPATH": str(repo_root),
    }
    cmd = [sys.executable, "-m", "faust", "-A", "tests.integration.faust_echo_app",
           "--datadir", str(tmp_path / "faust"), "worker", "-l", "warn"]  # fmt: skip
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(cmd, env=env, cwd=repo_root, stdout=log, stderr=subprocess.STDOUT)
    try:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for n in range(5):
                await producer.send(source, orjson.dumps({"n": n}), key=b"user-1")
            await producer.flush()
        finally:
            await producer.stop()
        values = await _read(
            kafka_bootstrap, sink, f"g-{unique}", 5, timeout=240,
            give_up=lambda: worker.poll() is not None,
        )  # fmt: skip
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(worker.wait, 30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
    got = [orjson.loads(v) for v in values]
    worker_log = (tmp_path / "worker.log").read_text()[-3000:]
    assert [g["echo"]["n"] for g in got] == list(range(5)), worker_log
    assert all(g["by"] == "faust" for g in got)


def test_down_leaves_no_broker_process(kafka_broker: LocalBroker, tmp_path: Path) -> None:
    second = LocalBroker(
        BrokerConfig(
            home=tmp_path,
            lib=kafka_broker.config.lib,
            port=free_port(),
            controller_port=free_port(),
            heap="256m",
        )
    )
    pid = second.up(timeout=600).pid
    assert pid is not None
    assert second.down() is True
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert second.status().running is False
    assert second.down() is False  # idempotent
