"""The tables: user state by user, statistics records by item.

`user-state`: user_id -> compact interest-state bytes (`llmrec.interests`). Partitions equal the
partitions of `events` and `events-by-user`, which co-partition it: only the agent that owns a
user's partition writes that user's state.

`item-stats`: item_id -> `llmrec.shared_stats.ItemStatsRecord` bytes, written only by the agent
that owns the item's `item-updates` partition. Its changelog is the `item-stats` topic, which
every worker replicates into its engine.

Changelog-backed, RocksDB on disk when `rocksdict` is installed.
"""

from __future__ import annotations

from workers import topics
from workers.app import app
from workers.settings import get_settings

__all__ = ["item_stats", "user_state"]

_settings = get_settings()
# The changelog Faust creates for user state is as durable as the topics llmrec creates.
_durable = (
    {"min.insync.replicas": str(_settings.min_insync_replicas)}
    if _settings.min_insync_replicas
    else {}
)

user_state = app.Table(
    "user-state",
    default=None,
    key_type=bytes,
    value_type=bytes,
    partitions=get_settings().partitions,
    help="Per-user interest state (llmrec.interests.UserState bytes).",
    extra_topic_configs=_durable,
)

item_stats = app.Table(
    "item-stats",
    default=None,
    key_type=bytes,
    value_type=bytes,
    partitions=get_settings().partitions,
    changelog_topic=topics.item_stats,
    help="Per-item share of the statistics (llmrec.shared_stats.ItemStatsRecord bytes).",
)
