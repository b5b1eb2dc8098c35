"""The topics llmrec creates carry the durability settings, on the real broker."""

from __future__ import annotations

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from llmrec.exceptions import BrokerError
from workers import kafka_conn
from workers.settings import Settings
from workers.topic_admin import ensure_topics, topic_names

pytestmark = [pytest.mark.kafka]


async def test_topics_get_min_isr_and_dlq_retention(kafka_bootstrap: str, unique: str) -> None:
    s = Settings(bootstrap_servers=kafka_bootstrap, topic_prefix=f"dur{unique}.")
    s.dlq_retention_ms = 3_600_000
    await ensure_topics(s)
    assert (s.replication_factor, s.min_insync_replicas) == (1, 1)  # one broker here
    names = topic_names(s)
    admin = kafka_conn.admin_client(s)
    await admin.start()
    try:
        wanted = [names["events_dlq"], names["item_stats"]]
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, n) for n in wanted]
        )
    finally:
        await admin.close()
    configs = {
        name: {c[0]: c[1] for c in resource[4]}
        for response in described
        for resource in response.resources
        for name in [resource[3]]
    }
    dlq, stats = configs[names["events_dlq"]], configs[names["item_stats"]]
    assert dlq["retention.ms"] == "3600000"
    assert dlq["min.insync.replicas"] == "1"
    assert stats["cleanup.policy"] == "compact"


async def test_more_replicas_than_brokers_is_refused(kafka_bootstrap: str, unique: str) -> None:
    s = Settings(
        bootstrap_servers=kafka_bootstrap, topic_prefix=f"dur{unique}.", replication_factor=3
    )
    with pytest.raises(BrokerError, match="cluster has 1 broker"):
        await ensure_topics(s)
