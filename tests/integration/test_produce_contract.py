"""`llmrec produce --items --events`: contract files replayed into the real broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from typer.testing import CliRunner

from workers.cli import app
from workers.settings import get_settings

pytestmark = pytest.mark.kafka


@pytest.fixture
def settings_env(
    monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str, unique: str
) -> Iterator[str]:
    prefix = f"contract-{unique}."
    monkeypatch.setenv("LLMREC_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("LLMREC_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("LLMREC_PARTITIONS", "1")  # one partition: global order is observable
    get_settings.cache_clear()
    yield prefix
    get_settings.cache_clear()


async def _read(bootstrap: str, topic: str, n: int, timeout: float = 120) -> list[dict[str, str]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    got: list[dict[str, str]] = []
    try:
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            got += [
                {"key": (m.key or b"").decode(), **orjson.loads(m.value or b"{}")}
                for msgs in batch.values()
                for m in msgs
            ]
    finally:
        await consumer.stop()
    return got


def test_produce_replays_contract_files(
    settings_env: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text(
        '{"item_id": "a", "title": "A"}\n{"item_id": "b"}\n{"item_id": "c", "title": "C"}\n'
    )
    events = tmp_path / "events.jsonl"
    events.write_text(
        "\n".join(
            orjson.dumps(
                {"event_id": i, "type": "view", "user_id": u, "item_id": "a", "ts": t}
            ).decode()
            for i, u, t in [("e1", "u1", 30), ("e2", "u2", 10), ("e3", "u1", 10), ("e4", "u2", 5)]
        )
        + "\n"
    )

    result = CliRunner().invoke(app, ["produce", "--items", str(items), "--events", str(events)])

    assert result.exit_code == 1, result.output  # the valid records are sent, the bad one refused
    assert "1 line errors" in result.output
    assert "sent 2 items and 4 events" in result.output
    sent_items = asyncio.run(_read(kafka_bootstrap, f"{settings_env}items", 2))
    assert [(r["key"], r["title"]) for r in sent_items] == [("a", "A"), ("c", "C")]
    sent = asyncio.run(_read(kafka_bootstrap, f"{settings_env}events", 4))
    assert [(r["event_id"], r["key"]) for r in sent] == [
        ("e4", "u2"), ("e2", "u2"), ("e3", "u1"), ("e1", "u1"),
    ]  # fmt: skip  # time order; the tie e2/e3 keeps file order
