"""The index replica against the real broker: upserts, deletes, resume from a snapshot."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from aiokafka import AIOKafkaProducer

from llmrec.exceptions import BrokerError
from llmrec.index import ItemIndex
from workers.replica import IndexReplica, VectorRecord, decode_vector, encode_vector
from workers.settings import Settings
from workers.topic_admin import ensure_topics, topic_names

DIM = 8


def _vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def test_vector_record_round_trip_is_compact() -> None:
    rec = VectorRecord("Alien (1979)", ("Horror", "Sci-Fi"), 12.5, _vec(1))
    raw = encode_vector(rec)
    back = decode_vector(raw)
    assert back.title == rec.title
    assert back.categories == rec.categories
    assert back.ts == 12.5
    np.testing.assert_array_equal(back.vector, rec.vector)
    assert len(raw) < DIM * 4 + 80


async def _replica_run(replica: IndexReplica, until: int) -> None:
    task = asyncio.create_task(replica.run())
    try:
        await asyncio.wait_for(replica.caught_up.wait(), 30)
        for _ in range(100):
            if len(replica.index) == until:
                break
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.kafka
async def test_replica_applies_upserts_deletes_and_resumes(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    settings = Settings(bootstrap_servers=kafka_bootstrap, topic_prefix=f"rep{unique}.")
    await ensure_topics(settings)
    topic = topic_names(settings)["item_vectors"]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    for i in range(20):
        rec = VectorRecord(f"item {i}", (), 0.0, _vec(i))
        await producer.send(topic, encode_vector(rec), key=f"i{i}".encode())
    await producer.send(topic, None, key=b"i3")  # tombstone
    await producer.send(topic, encode_vector(VectorRecord("new 5", (), 0, _vec(99))), key=b"i5")
    await producer.flush()
    changes: list[int] = []

    async def on_change(added: list[tuple[str, VectorRecord]], deleted: list[str]) -> None:
        changes.append(len(added))

    snap = tmp_path / "index"
    replica = IndexReplica(
        kafka={"bootstrap_servers": kafka_bootstrap}, topic=topic,
        index=ItemIndex(DIM, None), snapshot_dir=snap,
        snapshot_every_s=60, on_change=on_change,
    )  # fmt: skip
    await _replica_run(replica, 19)
    assert len(replica.index) == 19
    assert "i3" not in replica.index
    assert replica.titles["i5"] == "new 5"
    np.testing.assert_allclose(replica.index.vector("i5"), _vec(99), atol=1e-6)
    replica.snapshot()

    # A restart loads the snapshot and reads only what came after it.
    await producer.send(topic, encode_vector(VectorRecord("late", (), 0, _vec(7))), key=b"late")
    await producer.flush()
    await producer.stop()
    loaded = IndexReplica.load_snapshot(snap)
    assert loaded is not None
    index, offsets, titles = loaded
    assert sum(offsets.values()) == 22
    assert len(index) == 19
    seen: list[int] = []

    async def count(added: list[tuple[str, VectorRecord]], deleted: list[str]) -> None:
        seen.append(len(added))

    again = IndexReplica(
        kafka={"bootstrap_servers": kafka_bootstrap}, topic=topic, index=index, snapshot_dir=snap,
        snapshot_every_s=60, on_change=count, offsets=offsets, titles=titles,
    )  # fmt: skip
    await _replica_run(again, 20)
    assert sum(seen) == 1, "re-read records that the snapshot already held"
    assert "late" in again.index
    assert again.titles["i0"] == "item 0"


@pytest.mark.kafka
async def test_a_partition_count_other_than_the_topics_is_refused(
    kafka_bootstrap: str, unique: str
) -> None:
    two = Settings(bootstrap_servers=kafka_bootstrap, topic_prefix=f"cp{unique}.", partitions=2)
    await ensure_topics(two)
    await ensure_topics(two)  # the same count again is fine
    four = two.model_copy(update={"partitions": 4})
    with pytest.raises(BrokerError, match=r"LLMREC_PARTITIONS is 4 but .*events has 2"):
        await ensure_topics(four)
