"""`produce` refusals, `dlq tail`, `dlq replay` and `tail --json` against the real broker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from typer.testing import CliRunner, Result

from workers.cli import app
from workers.dlq import DLQ_MAX_VALUE_BYTES, dead_letter_record
from workers.settings import get_settings
from workers.topic_admin import ensure_topics

pytestmark = pytest.mark.kafka

EVENT = {"event_id": "e1", "type": "view", "user_id": "u1", "item_id": "i1", "ts": 1_700_000_000}
BINARY = b"\xff\xfe not utf-8"
HUGE = b'{"item_id": "big", "title": "' + b"x" * DLQ_MAX_VALUE_BYTES + b'"}'


@pytest.fixture
def prefix(monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str, unique: str) -> Iterator[str]:
    """A fresh topic prefix with every pipeline topic created (one partition each)."""
    prefix = f"dlqcli-{unique}."
    monkeypatch.setenv("LLMREC_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("LLMREC_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("LLMREC_PARTITIONS", "1")
    get_settings.cache_clear()
    asyncio.run(ensure_topics(get_settings()))
    yield prefix
    get_settings.cache_clear()


def _cli(*args: str) -> Result:
    return CliRunner().invoke(app, [*args, "--connect-timeout", "20"])


async def _send(
    bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=2 * 1024 * 1024)
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def _all(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every record of a one-partition topic, up to its end now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        got: list[tuple[bytes | None, bytes | None]] = []
        while await consumer.position(tp) < end:
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                got += [(m.key, m.value) for m in msgs]
        return got
    finally:
        await consumer.stop()


def _dead_letter(raw: bytes | None, key: bytes | None, topic: str, offset: int) -> bytes:
    doc = dead_letter_record(
        raw=raw, key=key, error=f"bad at {offset}", kind="invalid",
        topic=topic, partition=0, offset=offset,
    )  # fmt: skip
    return orjson.dumps(doc)


@pytest.fixture
def dead_letters(prefix: str, kafka_bootstrap: str) -> str:
    """Four dead letters: a text event, a binary event, an item, and an item too big to keep."""
    events, items = f"{prefix}events", f"{prefix}items"
    asyncio.run(
        _send(
            kafka_bootstrap,
            f"{prefix}events.dlq",
            [
                (b"u1", _dead_letter(orjson.dumps(EVENT), b"u1", events, 10)),
                (b"u2", _dead_letter(BINARY, b"u2", f"{prefix}events-by-user", 11)),
            ],
        )
    )
    asyncio.run(
        _send(
            kafka_bootstrap,
            f"{prefix}items.dlq",
            [
                (b"i9", _dead_letter(b'{"item_id": "i9"}', b"i9", items, 3)),
                (b"big", _dead_letter(HUGE, b"big", items, 4)),
            ],
        )
    )
    return prefix


def test_a_refused_event_prints_why_and_sends_nothing(prefix: str, kafka_bootstrap: str) -> None:
    bad = orjson.dumps({k: v for k, v in EVENT.items() if k != "ts"} | {"type": "nope"}).decode()

    result = _cli("produce", "--event", bad)

    assert result.exit_code == 1
    assert "refused: ts: Field required" in result.stderr
    assert "refused: type: Input should be 'view'" in result.stderr
    good = _cli("produce", "--event", orjson.dumps(EVENT).decode())
    assert good.exit_code == 0, good.output
    assert asyncio.run(_all(kafka_bootstrap, f"{prefix}events")) == [(b"u1", orjson.dumps(EVENT))]


def test_refused_file_records_are_listed_and_the_exit_status_is_1(
    prefix: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    items, events = tmp_path / "items.jsonl", tmp_path / "events.jsonl"
    items.write_text('{"item_id": "i1", "title": "One"}\n')
    events.write_text(f'{orjson.dumps(EVENT).decode()}\n{{"event_id": "e2"}}\nnot json\n')

    dry = _cli("produce", "--items", str(items), "--events", str(events), "--dry-run")
    assert dry.exit_code == 1
    assert "would send 1 items and 1 events" in dry.stderr
    assert asyncio.run(_all(kafka_bootstrap, f"{prefix}events")) == []

    result = _cli("produce", "--items", str(items), "--events", str(events))
    assert result.exit_code == 1
    said = " ".join(result.stderr.split())  # the error list wraps long paths
    assert "events.jsonl:2: Event invalid" in said
    assert "events.jsonl:3: not valid JSON" in said
    assert "refused 2 records" in said
    sent = asyncio.run(_all(kafka_bootstrap, f"{prefix}events"))
    assert [(key, orjson.loads(value or b"")) for key, value in sent] == [(b"u1", EVENT)]


def test_dlq_tail_json_gives_each_document_and_its_place(dead_letters: str) -> None:
    result = _cli("dlq", "tail", "--json")

    assert result.exit_code == 0, result.output
    docs = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert sorted((d["dlq_topic"], d["dlq_offset"], d["source"]["offset"]) for d in docs) == [
        (f"{dead_letters}events.dlq", 0, 10), (f"{dead_letters}events.dlq", 1, 11),
        (f"{dead_letters}items.dlq", 0, 3), (f"{dead_letters}items.dlq", 1, 4),
    ]  # fmt: skip
    assert {d["value_encoding"] for d in docs} == {"utf-8", "base64"}
    only = _cli("dlq", "tail", "--json", "--topic", "items", "--offsets", "0:1", "--max", "1")
    assert [orjson.loads(line)["value_truncated"] for line in only.stdout.splitlines()] == [True]
    pretty = _cli("dlq", "tail", "--topic", "events", "--error-contains", "at 10")
    assert pretty.exit_code == 0, pretty.output
    assert f"from {dead_letters}events 0@10" in pretty.stdout
    assert "1 dead letters" in pretty.stderr


def test_dlq_replay_all_resends_original_bytes_and_skips_truncated(
    dead_letters: str, kafka_bootstrap: str
) -> None:
    result = _cli("dlq", "replay", "--all")

    assert result.exit_code == 0, result.output
    assert "re-sent 3 records" in result.stderr
    assert "skipped 1: truncated in the DLQ (1)" in result.stderr
    events = asyncio.run(_all(kafka_bootstrap, f"{dead_letters}events"))
    assert events == [(b"u1", orjson.dumps(EVENT)), (b"u2", BINARY)]  # events-by-user -> events
    items = asyncio.run(_all(kafka_bootstrap, f"{dead_letters}items"))
    assert items == [(b"i9", b'{"item_id": "i9"}')]


def test_dlq_replay_fixed_checks_and_sends_corrections(
    dead_letters: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    tail = _cli("dlq", "tail", "--json", "--topic", "items", "--kind", "invalid", "--max", "1")
    line = orjson.loads(tail.stdout.splitlines()[0])
    fixed = tmp_path / "fixed.jsonl"
    fixed.write_bytes(
        orjson.dumps({**line, "value": {"item_id": "i9", "title": "Nine"}})
        + b"\n"
        + orjson.dumps({**line, "value": {"item_id": "i10"}})
        + b"\n"
    )

    result = _cli("dlq", "replay", "--fixed", str(fixed))

    assert result.exit_code == 1
    assert "fixed.jsonl:2: <record>: Value error, title is required" in result.stderr
    assert "re-sent 1 records" in result.stderr
    items = asyncio.run(_all(kafka_bootstrap, f"{dead_letters}items"))
    assert items == [(b"i9", b'{"item_id":"i9","title":"Nine"}')]


def test_tail_json_prints_lists_and_tombstones(prefix: str, kafka_bootstrap: str) -> None:
    rec = {
        "user_id": "u1", "items": [{"item_id": "i1", "score": 0.5, "reasons": ["x"]}],
        "trigger_event_id": "e1", "covered_event_ids": ["e1"], "generated_at": 1.0,
        "model": {"encoder": "m", "variant": "int8", "version": "1", "ranker": None},
    }  # fmt: skip
    records = [(b"u1", orjson.dumps(rec)), (b"u2", orjson.dumps({**rec, "user_id": "u2"}))]
    asyncio.run(_send(kafka_bootstrap, f"{prefix}recommendations", [*records, (b"u1", None)]))

    result = _cli("tail", "--json", "--from-beginning", "--max", "3")
    assert result.exit_code == 0, result.output
    got = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert got == [rec, {**rec, "user_id": "u2"}, {"user_id": "u1", "deleted": True}]

    pretty = _cli("tail", "--from-beginning", "--user", "u1", "--max", "2")
    assert pretty.exit_code == 0, pretty.output
    assert pretty.stdout.splitlines()[-1] == "user u1: forgotten"
