"""`llmrec.client` against the real broker: what the Producer writes, what Recommendations reads."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from llmrec import client
from llmrec.events import Recommendation

pytestmark = pytest.mark.kafka


async def _create(bootstrap: str, *names: str, partitions: int = 2) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
        )
    finally:
        await admin.close()


async def _read_raw(bootstrap: str, topic: str, n: int) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    got: list[tuple[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + 60
        while len(got) < n and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            got += [(m.key, m.value) for msgs in batch.values() for m in msgs]
    finally:
        await consumer.stop()
    return got


async def test_the_producer_keys_events_by_user_and_items_by_item(
    kafka_bootstrap: str, unique: str
) -> None:
    prefix = f"client-{unique}."
    await _create(kafka_bootstrap, f"{prefix}events", f"{prefix}items")
    events = [client.view("u1", "i1"), client.rating("u2", "i1", 4), client.forget("u1")]
    items = [client.item("i1", "Dune", categories=["Sci-Fi"]), client.delete_item("i2")]
    async with client.Producer(kafka_bootstrap, topic_prefix=prefix, client_id="t") as producer:
        for doc in events:
            await producer.send_event(doc)
        for doc in items:
            await producer.send_item(doc)
    got_events = await _read_raw(kafka_bootstrap, f"{prefix}events", len(events))
    got_items = await _read_raw(kafka_bootstrap, f"{prefix}items", len(items))
    key_of = {orjson.loads(v)["event_id"]: (k, orjson.loads(v)) for k, v in got_events}
    assert {e["event_id"]: (e["user_id"].encode(), e) for e in events} == key_of
    assert sorted(got_items) == sorted((i["item_id"].encode(), orjson.dumps(i)) for i in items)


def _recommendation(user_id: str, trigger: str) -> bytes:
    return orjson.dumps(
        {
            "user_id": user_id,
            "items": [{"item_id": "i9", "score": 0.5, "reasons": ["similar to i1"]}],
            "trigger_event_id": trigger,
            "covered_event_ids": [trigger],
            "generated_at": 1_700_000_000.0,
            "model": {"encoder": "hashing", "variant": "int8", "version": "v1", "ranker": None},
        }
    )


async def test_recommendations_yields_lists_and_forgotten_users_and_passes_over_junk(
    kafka_bootstrap: str, unique: str
) -> None:
    prefix = f"client-{unique}."
    topic = f"{prefix}recommendations"
    await _create(kafka_bootstrap, topic, partitions=1)  # one partition: the order is observable
    raw = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await raw.start()
    try:
        for key, value in [
            (b"u1", _recommendation("u1", "e1")),
            (b"u2", _recommendation("u2", "e2")),
            (b"u1", b'{"user_id": "u1"}'),  # not a list: logged, counted, passed over
            (b"u1", None),  # the tombstone of a forgotten user
            (b"u3", _recommendation("u3", "e3")),
        ]:
            await raw.send_and_wait(topic, value, key=key)
    finally:
        await raw.stop()

    async def first(n: int, reader: client.Recommendations) -> list[object]:
        out: list[object] = []
        async with reader:
            async for rec in reader:
                out.append(rec)
                if len(out) == n:
                    break
        return out

    everyone = client.Recommendations(kafka_bootstrap, topic_prefix=prefix, start="earliest")
    got = await asyncio.wait_for(first(4, everyone), 60)
    assert [type(r) for r in got] == [
        Recommendation,
        Recommendation,
        client.Forgotten,
        Recommendation,
    ]
    assert [r.user_id for r in got] == ["u1", "u2", "u1", "u3"]  # type: ignore[attr-defined]
    assert got[0].trigger_event_id == "e1"  # type: ignore[attr-defined]
    assert everyone.skipped == 1

    only_u1 = client.Recommendations(
        kafka_bootstrap, topic_prefix=prefix, start="earliest", users={"u1"}
    )
    got = await asyncio.wait_for(first(2, only_u1), 60)
    assert got == [Recommendation.model_validate_json(_recommendation("u1", "e1")),
                   client.Forgotten("u1")]  # fmt: skip
