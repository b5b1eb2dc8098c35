"""Topic names and creation, without Faust: used by the worker, the CLI and the tests.

Every pipeline topic is created with `Settings.partitions` partitions; `items` and
`item-vectors` are compacted (cleanup.policy=compact). Existing topics are left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from llmrec.exceptions import BrokerError
from workers import kafka_conn
from workers.settings import Settings

__all__ = [
    "COMPACTED",
    "COPARTITIONED",
    "COPARTITIONED_ITEMS",
    "assign_all",
    "ensure_topics",
    "settle_durability",
    "topic_configs",
    "topic_names",
]

log = logging.getLogger(__name__)

COMPACTED = ("items", "item_vectors", "item_stats")
# Keyed by user and read by the agents that own the user table's partitions.
COPARTITIONED = ("events", "events_by_user", "events_parked")
# Keyed by item: the item-stats table (whose changelog is `item-stats`) is co-partitioned with
# `item-updates` the same way.
COPARTITIONED_ITEMS = ("item_updates", "item_stats")


def topic_names(settings: Settings) -> dict[str, str]:
    """Every topic name of the pipeline, by role."""
    p = settings.topic_prefix
    return {
        "items": f"{p}items",
        "item_vectors": f"{p}item-vectors",
        "events": f"{p}events",
        "events_by_user": f"{p}events-by-user",
        "events_parked": f"{p}events-parked",
        "item_updates": f"{p}item-updates",
        "item_stats": f"{p}item-stats",
        "recommendations": f"{p}recommendations",
        "events_dlq": f"{p}events.dlq",
        "items_dlq": f"{p}items.dlq",
    }


async def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create the missing pipeline topics; returns the names it created.

    Unset durability settings are settled here from the cluster's size (`settle_durability`),
    on `settings` itself, so the Faust app built from them after creates its own topics alike.
    A cluster that does not answer, or refuses the credentials, raises one clear BrokerError.
    """
    await kafka_conn.probe(settings, timeout_s)
    deadline = asyncio.get_running_loop().time() + timeout_s
    admin = kafka_conn.admin_client(settings)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        settle_durability(settings, brokers=len(cluster["brokers"]))
        existing = set(await admin.list_topics())
        await _check_copartitioned(admin, settings, existing)
        wanted = [
            NewTopic(
                name,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor or 1,
                topic_configs=topic_configs(settings, role),
            )
            for role, name in topic_names(settings).items()
            if name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
            log.info("created topics %s", [t.name for t in wanted])
            await _wait_for_leaders(admin, [t.name for t in wanted], deadline)
        return [t.name for t in wanted]
    finally:
        await admin.close()


def settle_durability(settings: Settings, brokers: int) -> None:
    """Fill unset `replication_factor` (as many brokers as there are, at most 3) and
    `min_insync_replicas` (one less, at least 1); refuse more replicas than brokers."""
    rf = settings.replication_factor or min(3, brokers)
    if rf > brokers:
        raise BrokerError(
            f"LLMREC_REPLICATION_FACTOR is {rf} but the cluster has {brokers} broker(s)"
        )
    settings.replication_factor = rf
    settings.min_insync_replicas = settings.min_insync_replicas or max(1, rf - 1)


def topic_configs(settings: Settings, role: str) -> dict[str, str]:
    """The configs a pipeline topic is created with: compaction, min ISR, DLQ retention."""
    configs: dict[str, str] = {}
    if role in COMPACTED:
        configs["cleanup.policy"] = "compact"
    elif role == "recommendations":
        # Compacted too, so a forgotten user's tombstone removes their older lists; the
        # retention still removes every list after it.
        configs["cleanup.policy"] = "compact,delete"
    if role.endswith("_dlq"):
        configs["retention.ms"] = str(settings.dlq_retention_ms)
    if settings.min_insync_replicas is not None:
        configs["min.insync.replicas"] = str(settings.min_insync_replicas)
    return configs


async def _check_copartitioned(
    admin: AIOKafkaAdminClient, settings: Settings, existing: set[str]
) -> None:
    """Refuse topics whose partition count is not `settings.partitions` where it must be.

    The user table is co-partitioned with `events`, `events-by-user` and `events-parked`: a
    worker whose count differs from theirs writes users' state to the wrong partitions, and in a
    probe most events were never answered. Better not to start.
    """
    names = topic_names(settings)
    roles = COPARTITIONED + COPARTITIONED_ITEMS
    wanted = [names[r] for r in roles if names[r] in existing]
    if not wanted:
        return
    cluster = await admin._client.fetch_all_metadata()  # no public metadata accessor
    counts = {n: len(cluster.partitions_for_topic(n) or ()) for n in wanted}
    wrong = {n: k for n, k in counts.items() if k != settings.partitions}
    if wrong:
        found = ", ".join(f"{n} has {k}" for n, k in sorted(wrong.items()))
        raise BrokerError(
            f"LLMREC_PARTITIONS is {settings.partitions} but {found} partitions; the user and "
            "item-stats tables are co-partitioned with these topics, so they must agree (set "
            "LLMREC_PARTITIONS to the topics' count, or use a new LLMREC_TOPIC_PREFIX and "
            "LLMREC_APP_ID)"
        )


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], deadline: float) -> None:
    """Wait until every partition of `names` has a leader (avoids NotLeader retries after)."""
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        cluster = await admin._client.fetch_all_metadata()  # no public metadata accessor
        parts = [(n, cluster.partitions_for_topic(n)) for n in names]
        if all(
            ps
            and all(
                cluster.leader_for_partition(TopicPartition(n, p)) not in (None, -1) for p in ps
            )
            for n, ps in parts
        ):
            return
        await asyncio.sleep(0.1)


async def assign_all(
    consumer: AIOKafkaConsumer, *topics: str, timeout_s: float = 30.0
) -> list[TopicPartition]:
    """Manually assign every partition of `topics` to a group-less consumer, in one call (one
    assignment per topic would reset the positions of the topics assigned before). Waits for
    the topics; one still unknown after `timeout_s` is a BrokerError (nothing is created)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        cluster = await consumer._client.fetch_all_metadata()  # no public per-topic refresh
        parts = {topic: cluster.partitions_for_topic(topic) for topic in topics}
        missing = sorted(topic for topic, ps in parts.items() if not ps)
        if not missing:
            break
        if asyncio.get_running_loop().time() > deadline:
            raise BrokerError(
                f"topic {missing[0]} does not exist at {consumer._client._bootstrap_servers}; "
                "`llmrec worker` or `llmrec produce` creates the pipeline's topics"
            )
        await asyncio.sleep(0.2)
    tps = [TopicPartition(topic, p) for topic, ps in parts.items() for p in sorted(ps or ())]
    consumer.assign(tps)
    return tps


async def read_to_end(
    kafka: Mapping[str, Any], topic: str, timeout_s: float | None = None
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic`, from the beginning up to the end it had when called (a
    group-less consumer of all partitions); stops early after `timeout_s` if given."""
    consumer = AIOKafkaConsumer(**kafka, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = await assign_all(consumer, topic)
        end = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            if deadline is not None and loop.time() > deadline:
                return
            for records in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
                for r in records:
                    yield r
    finally:
        await consumer.stop()
