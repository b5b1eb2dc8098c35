"""The Faust application, configured from `Settings` (env `LLMREC_*`) at the process edge.

Only configuration lives here; topics, tables, agents and web views are in their own modules
and are imported by `workers.agents` (autodiscovery is off: imports are explicit).
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from workers.settings import Settings, get_settings

__all__ = ["app", "make_app", "rocksdb_available"]

log = logging.getLogger(__name__)


def rocksdb_available() -> bool:
    """Whether Faust's RocksDB store can run here (it needs `rocksdict`)."""
    try:
        import rocksdict  # noqa: F401
    except ImportError:
        return False
    return True


def make_app(settings: Settings) -> faust.App:
    """A Faust app whose topics, store, ports and partitions come from `settings`."""
    store = "memory://"
    if settings.store == "rocksdb":
        if rocksdb_available():
            store = "rocksdb://"
        else:
            log.warning("rocksdict is not installed; user state falls back to the memory store")
    return faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        store=store,
        datadir=str(settings.state_dir / "faust"),
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_acks=1,
        producer_linger=0.005,  # batches produce requests; small next to the 100 ms budget
        stream_buffer_maxsize=4096,
        broker_commit_every=1000,
        broker_commit_interval=settings.commit_interval_s,
        # Crash recovery: a restarted worker rejoins under the same static member id and takes
        # its partitions back without a rebalance; a worker gone for good is replaced after
        # `session_timeout_s` (Faust's default of 60 s left partitions unserved that long).
        consumer_group_instance_id=settings.member_id,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        web_enabled=True,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        # Faust's own pages only on request (LLMREC_WEB_DEBUG_PAGES): /table serves raw user
        # state unauthenticated. `app.table_route` proxies through `app.router` (the assignor's
        # host map), not the /router page, so our routed views work with it off.
        web_tables_enabled=settings.web_debug_pages,
        web_router_enabled=settings.web_debug_pages,
        web_graph_enabled=settings.web_debug_pages,
        web_stats_enabled=settings.web_debug_pages,
        web_metrics_enabled=settings.web_debug_pages,
        table_cleanup_interval=60.0,
    )


def _watch_skipped_offsets(settings: Settings) -> None:
    """Log every run of offsets faust-streaming will commit without having delivered them.

    When a fetched offset jumps ahead of the last one read, Faust records the range as a "gap"
    and commits it as processed (meant for compacted topics, where offsets skip legitimately).
    On `events` a gap means records were skipped: kill -9 under load once lost hundreds of events
    without a trace, so any gap is logged (ERROR on a topic that is not compacted) and counted.
    """
    from faust.transport.consumer import Consumer

    from workers import metrics
    from workers.topic_admin import COMPACTED, topic_names

    names = topic_names(settings)
    compacted_topics = {names[role] for role in COMPACTED}
    original = Consumer._add_gap
    if getattr(original, "_llmrec_watch", False):
        return

    async def add_gap(self: Consumer, tp: Any, offset_from: int, offset_to: int) -> None:
        compacted = tp.topic in compacted_topics or tp.topic.endswith("-changelog")
        log.log(
            logging.WARNING if compacted else logging.ERROR,
            "offsets %d..%d of %s[%d] were not delivered and will be committed as processed",
            offset_from, offset_to, tp.topic, tp.partition,
        )  # fmt: skip
        metrics.SKIPPED_OFFSETS.labels(topic=tp.topic).inc(max(0, offset_to - offset_from + 1))
        await original(self, tp, offset_from, offset_to)

    add_gap._llmrec_watch = True  # type: ignore[attr-defined]
    Consumer._add_gap = add_gap  # type: ignore[method-assign]


_watch_skipped_offsets(get_settings())
app = make_app(get_settings())
