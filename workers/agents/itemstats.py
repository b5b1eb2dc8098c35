"""Item path of the statistics: `item-updates` -> the `item-stats` table (its changelog is the
compacted `item-stats` topic every worker replicates).

Workers send a micro-batch's updates as one bundle per partition (`item_partition`: Kafka's
partitioner on the item id). The agent that owns the partition folds each item's updates into
its record (`llmrec.shared_stats.ItemStatsRecord.apply`), once per micro-batch per item, so an
item engaged with many times in a batch costs one record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiokafka.partitioner import murmur2
from faust.types import EventT, StreamT

from llmrec.shared_stats import ItemStatsRecord, StatsUpdate, unpack_updates
from workers import metrics, topics
from workers.agents.context import as_of
from workers.agents.runtime import Runtime
from workers.app import app
from workers.dlq import dead_letter_event
from workers.tables import item_stats

__all__ = ["fold_updates", "item_partition", "item_stats_agent"]

log = logging.getLogger(__name__)


def item_partition(item_id: str, partitions: int) -> int:
    """The `item-updates` partition of an item: Kafka's default partitioner (murmur2 of the
    key), so a bare update keyed by its item lands where the workers' bundles put it."""
    return int(murmur2(item_id.encode("utf-8")) & 0x7FFFFFFF) % partitions


async def fold_updates(rt: Runtime, batch: Sequence[EventT[bytes]]) -> None:
    """Fold a micro-batch of update messages (bundles, or single updates keyed by item) into
    their items' records, each item's record written once. Never raises: a message that cannot
    be read goes to `events.dlq` with its reason, and only that message."""
    by_item: dict[str, list[StatsUpdate]] = {}
    last: dict[str, EventT[bytes]] = {}
    partitions = rt.settings.partitions
    for event in batch:
        msg = event.message
        try:
            updates = unpack_updates(msg.value or b"")
            for u in updates:
                if msg.key is not None and u.item_id.encode() != msg.key:
                    raise ValueError(f"update of {u.item_id!r} keyed {msg.key[:64]!r}")
                if item_partition(u.item_id, partitions) != msg.partition:
                    raise ValueError(f"update of {u.item_id!r} on partition {msg.partition}")
        except ValueError as exc:
            metrics.BAD_STATS.inc()
            await dead_letter_event(topics.events_dlq, event, str(exc), "invalid")
            continue
        for u in updates:
            by_item.setdefault(u.item_id, []).append(u)
            last[u.item_id] = event
    cfg = rt.engine.config
    for item_id, updates in by_item.items():
        try:
            record = _record(item_id.encode())
            for u in updates:
                record.apply(u, cfg.covisit, cfg.popularity)
            as_of(last[item_id], item_stats.__setitem__, item_id.encode(), record.to_bytes())
        except Exception as exc:  # a bug: costs this item's updates, loudly
            metrics.BAD_STATS.inc(len(updates))
            log.exception("could not fold %d updates of one item: %s", len(updates),
                          type(exc).__name__)  # fmt: skip
            continue
        metrics.STATS_UPDATES.inc(len(updates))


def _record(key: bytes) -> ItemStatsRecord:
    raw = item_stats.get(key)
    if not raw:
        return ItemStatsRecord()
    try:
        return ItemStatsRecord.from_bytes(raw)
    except ValueError as exc:  # only a bug writes one: start the item over rather than stall it
        metrics.BAD_STATS.inc()
        log.error("discarding an unreadable item-stats record: %s", str(exc)[:200])
        return ItemStatsRecord()


@app.agent(topics.item_updates)
async def item_stats_agent(stream: StreamT[bytes]) -> None:
    rt = await Runtime.get()
    s = rt.settings
    async for batch in stream.take_events(  # type: ignore[attr-defined]  # not in StreamT
        s.stats_batch_size, within=s.stats_batch_within_s
    ):
        await fold_updates(rt, batch)
