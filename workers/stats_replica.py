"""Every worker's replica of `item-stats`: each item owner's record, applied to the engine.

Like the index replica (`workers.replica`), a group-less consumer of every partition. Its
progress is saved with the engine's statistics (`stats.bin`, `Runtime.save_stats`): a restart
restores both and reads only the records written since. A record that cannot be read is
counted and skipped; the next record of its item replaces it anyway.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from llmrec.shared_stats import ItemStatsRecord
from workers import metrics
from workers.replica import TopicReplica

__all__ = ["StatsReplica"]

log = logging.getLogger(__name__)


class StatsReplica(TopicReplica):
    """Applies `item-stats` records with `apply(item_id, record)` (the engine's)."""

    name = "stats_replica"

    def __init__(
        self,
        *,
        kafka: Mapping[str, Any],
        topic: str,
        apply: Callable[[str, ItemStatsRecord], None],
        snapshot_every_s: float,
        offsets: dict[int, int] | None = None,
    ) -> None:
        super().__init__(
            kafka=kafka, topic=topic, snapshot_every_s=snapshot_every_s, offsets=offsets
        )
        self._apply_record = apply

    async def _apply(self, records: list[Any]) -> None:
        for rec in records:
            if not rec.key or rec.value is None:
                continue
            try:
                item_id = rec.key.decode("utf-8")
                record = ItemStatsRecord.from_bytes(rec.value)
            except ValueError as exc:
                metrics.BAD_STATS.inc()
                log.error("skipping bad item-stats record @%d: %s", rec.offset, str(exc)[:200])
                continue
            self._apply_record(item_id, record)
            if record.event_at > 0 and self.caught_up.is_set():  # not a re-read after a restart
                metrics.STATS_EFFECT.observe(max(0.0, time.time() - record.event_at))
        metrics.STATS_RECORDS.inc(len(records))
