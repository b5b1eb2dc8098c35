"""The topics of the pipeline; names are `Settings.topic_prefix` + name.

Keys and values are raw bytes: records are parsed and validated by `llmrec.events` in the
agents, so a bad record reaches the dead-letter topic with its original bytes.
"""

from __future__ import annotations

from faust.types import TopicT

from workers.app import app
from workers.settings import get_settings
from workers.topic_admin import topic_names

__all__ = [
    "COMPACT",
    "events",
    "events_by_user",
    "events_dlq",
    "events_parked",
    "item_stats",
    "item_updates",
    "item_vectors",
    "items",
    "items_dlq",
    "recommendations",
]

COMPACT = {"cleanup.policy": "compact"}


_names = topic_names(get_settings())


def _topic(name: str, *, compact: bool = False, partitions: int | None = None) -> TopicT:
    return app.topic(
        _names[name],
        key_type=bytes,
        value_type=bytes,
        partitions=partitions,
        config=COMPACT if compact else None,
        acks=True,
    )


items = _topic("items", compact=True)
item_vectors = _topic("item_vectors", compact=True)
events = _topic("events")
# Internal repartition topic: events whose key was not their user_id, re-keyed by user_id.
events_by_user = _topic("events_by_user")
# Events whose item is not indexed yet, waiting durably (workers.agents.parking).
events_parked = _topic("events_parked")
recommendations = _topic("recommendations")
events_dlq = _topic("events_dlq")
items_dlq = _topic("items_dlq")
# The shared statistics (llmrec.shared_stats): each applied event's update, keyed by its item,
# and the item owners' records. `item-stats` is the changelog of the `item-stats` table
# (workers.tables), compacted, read whole by every worker's replica (workers.stats_replica).
item_updates = _topic("item_updates")
item_stats = app.topic(
    _names["item_stats"],
    key_type=bytes,
    value_type=bytes,
    partitions=get_settings().partitions,
    compacting=True,
    acks=False,  # as Faust's own changelogs: read by table recovery, never by an agent
    internal=True,
)
