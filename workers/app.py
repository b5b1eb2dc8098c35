"""The Faust application, configured from `Settings` (env `LLMREC_*`) at the process edge.

Only configuration lives here; topics, tables, agents and web views are in their own modules
and are imported by `workers.agents` (autodiscovery is off: imports are explicit).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from workers import kafka_conn, offsets
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


_BIND_ALL = ("0.0.0.0", "::", "")  # bind-all hosts: fine to bind, never to advertise


def make_app(settings: Settings) -> faust.App:
    """A Faust app whose topics, store, ports and partitions come from `settings`."""
    store = "memory://"
    if settings.store == "rocksdb":
        if rocksdb_available():
            store = "rocksdb://"
        else:
            log.warning("rocksdict is not installed; user state falls back to the memory store")
    if settings.web_advertised_url is None and settings.web_host in _BIND_ALL:
        log.warning(
            "LLMREC_WEB_HOST=%s binds every interface but is no address other workers can reach: "
            "set LLMREC_WEB_ADVERTISED_URL so routed requests find this worker",
            settings.web_host,
        )
    return faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        broker_credentials=kafka_conn.faust_credentials(settings),
        store=store,
        datadir=str(settings.state_dir / "faust"),
        autodiscover=False,
        topic_partitions=settings.partitions,
        # The worker settles both from the cluster's size before the app is built
        # (`topic_admin.settle_durability`); 1 only where no worker runs (tests, tools).
        topic_replication_factor=settings.replication_factor or 1,
        topic_allow_declare=True,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,  # every in-sync replica; idempotent too (`_durable_producers`)
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
        # What the assignor publishes for routing (`app.table_route`); None: Faust's default,
        # http://<web_host>:<web_port>.
        canonical_url=settings.web_advertised_url,
        # Faust's own pages only on request (LLMREC_WEB_DEBUG_PAGES): /table serves raw user
        # state to anyone who may call the web server (LLMREC_WEB_TOKEN guards them all, see
        # `workers.web`). `app.table_route` proxies through `app.router` (the assignor's
        # host map), not the /router page, so our routed views work with it off.
        web_tables_enabled=settings.web_debug_pages,
        web_router_enabled=settings.web_debug_pages,
        web_graph_enabled=settings.web_debug_pages,
        web_stats_enabled=settings.web_debug_pages,
        web_metrics_enabled=settings.web_debug_pages,
        table_cleanup_interval=60.0,
    )


def _durable_producers() -> None:
    """Faust asks aiokafka for an idempotent producer only inside transactions; every producer
    of ours is one, so a send retried after a lost acknowledgement is not written twice."""
    extra = faust_aiokafka.Producer._settings_extra
    if getattr(extra, "llmrec_durable", False):
        return

    def settings_extra(self: faust_aiokafka.Producer) -> Mapping[str, Any]:
        return {**kafka_conn.DURABLE, **extra(self)}

    settings_extra.llmrec_durable = True  # type: ignore[attr-defined]
    faust_aiokafka.Producer._settings_extra = settings_extra  # type: ignore[method-assign]


_durable_producers()
offsets.install(get_settings())  # skipped offsets on plain topics are fetched again
app = make_app(get_settings())
