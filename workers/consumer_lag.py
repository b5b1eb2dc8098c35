"""Consumer lag of the group's input topics, per partition this worker is assigned.

Lag is the partition's high-water mark (the offset the next record will get) minus the group's
committed offset, as `kafka-consumer-groups --describe` reports it. Both come from public
Faust APIs and cost no broker request: `app.consumer.highwater(tp)` (kept by every fetch) and
`app.monitor.tp_committed_offsets` (updated by every commit, about every 2.8 s). A partition
appears after this worker's first commit on it. Changelogs, the replicas' topics (their own
consumers: `llmrec_replica_lag`) and Faust's internal topics are not input topics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from faust.types import TP

from workers import metrics, topics
from workers.app import app

__all__ = ["input_topics", "partition_lag", "refresh"]

log = logging.getLogger(__name__)


def input_topics() -> frozenset[str]:
    """The topics the agents consume: items, events (and their two internal hops), updates."""
    return frozenset(
        t.get_topic_name()
        for t in (
            topics.items,
            topics.events,
            topics.events_by_user,
            topics.events_parked,
            topics.item_updates,
        )
    )


def partition_lag(
    assigned: Iterable[TP],
    committed: Mapping[TP, int],
    highwater: Callable[[TP], int | None],
    wanted: frozenset[str],
) -> dict[TP, int]:
    """Records between committed offset and high-water mark of each assigned `wanted` partition
    that has both (none yet: left out, not guessed as 0)."""
    lag: dict[TP, int] = {}
    for tp in assigned:
        if tp.topic not in wanted or tp not in committed:
            continue
        high = highwater(tp)
        if high is not None:
            lag[tp] = max(0, int(high) - int(committed[tp]))
    return lag


def _highwater(tp: TP) -> int | None:
    try:
        return app.consumer.highwater(tp)
    except Exception as exc:  # a partition just assigned and not fetched yet: no mark yet
        log.debug("no high-water mark for %s yet: %s", tp, exc)
        return None


def refresh() -> dict[TP, int]:
    """This worker's lag by partition, also set as `llmrec_consumer_lag{topic,partition}`
    (revoked partitions' series dropped)."""
    lag = partition_lag(
        app.consumer.assignment(),
        app.monitor.tp_committed_offsets,
        _highwater,
        input_topics(),
    )
    metrics.LAG.clear()
    for tp, n in lag.items():
        metrics.LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(n)
    return lag
