"""Item path of the statistics: `item-updates` -> the `item-stats` table (its changelog is the
compacted `item-stats` topic every worker replicates).

The agent that owns an item's partition folds the item's updates into its record
(`llmrec.shared_stats.ItemStatsRecord.apply`), once per micro-batch per item, so an item engaged
with many times in a batch costs one record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from faust.types import EventT, StreamT

from llmrec.shared_stats import ItemStatsRecord, StatsUpdate
from workers import metrics, topics
from workers.agents.context import as_of
from workers.agents.runtime import Runtime
from workers.app import app
from workers.dlq import dead_letter_event, dead_letter_failure
from workers.tables import item_stats

__all__ = ["fold_updates", "item_stats_agent"]

log = logging.getLogger(__name__)


async def fold_updates(rt: Runtime, batch: Sequence[EventT[bytes]]) -> None:
    """Fold a micro-batch of updates into their items' records. Never raises: an update that
    cannot be read or applied goes to `events.dlq` with its reason, and only that one."""
    by_item: dict[bytes, list[EventT[bytes]]] = {}
    for event in batch:
        by_item.setdefault(event.message.key or b"", []).append(event)
    cfg = rt.engine.config
    for key, events in by_item.items():
        try:
            record = _record(key)
        except Exception as exc:
            for event in events:
                await dead_letter_failure(topics.events_dlq, event, exc)
            continue
        last: EventT[bytes] | None = None
        applied = 0
        for event in events:
            try:
                update = StatsUpdate.from_bytes(event.message.value or b"")
                if update.item_id.encode() != key:
                    raise ValueError(f"update of {update.item_id!r} keyed {key[:64]!r}")
            except ValueError as exc:
                metrics.BAD_STATS.inc()
                await dead_letter_event(topics.events_dlq, event, str(exc), "invalid")
                continue
            record.apply(update, cfg.covisit, cfg.popularity)
            last, applied = event, applied + 1
        if last is None:
            continue
        try:
            as_of(last, item_stats.__setitem__, key, record.to_bytes())
        except Exception as exc:  # costs this item's updates only
            log.error("could not write an item's statistics: %s", type(exc).__name__)
            for event in events:
                await dead_letter_failure(topics.events_dlq, event, exc)
            continue
        metrics.STATS_UPDATES.inc(applied)


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
        s.event_batch_size, within=s.event_batch_within_s
    ):
        await fold_updates(rt, batch)
