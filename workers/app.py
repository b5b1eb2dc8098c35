"""The Faust application, configured from `Settings` (env `LLMREC_*`) at the process edge.

Only configuration lives here; topics, tables, agents and web views are in their own modules
and are imported by `workers.agents` (autodiscovery is off: imports are explicit).
"""

from __future__ import annotations

import logging

import faust

from workers import offsets
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


offsets.install(get_settings())  # skipped offsets on plain topics are fetched again
app = make_app(get_settings())
