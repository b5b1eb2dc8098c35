"""Prometheus metrics of a worker process, in one registry served at `/metrics`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
)

__all__ = [
    "BAD_VECTORS",
    "BROKER_UP",
    "BUILD_INFO",
    "DLQ",
    "DLQ_SEND_FAILURES",
    "DUPLICATES",
    "ENCODE_BATCH",
    "ENCODE_SECONDS",
    "EVENTS_IN",
    "FORGOTTEN",
    "INDEX_ITEMS",
    "INDEX_SEARCHES",
    "INDEX_UPDATED",
    "LAG",
    "LATENCY",
    "LOOP_RESTARTS",
    "PARKED",
    "PARK_HOPS",
    "REBALANCES",
    "RECS_OUT",
    "REGISTRY",
    "REPLICA_LAG",
    "REROUTED",
    "STAGE",
    "render",
    "set_build_info",
    "stage",
]

REGISTRY = CollectorRegistry(auto_describe=True)
# process_cpu_seconds_total, process_resident_memory_bytes, open fds, start time (Linux /proc):
# the dashboard's CPU and memory panels (deploy/grafana/llmrec.json).
ProcessCollector(registry=REGISTRY)

EVENTS_IN = Counter(
    "llmrec_events_in", "Valid user events consumed, by type.", ["type"], registry=REGISTRY
)
RECS_OUT = Counter(
    "llmrec_recommendations_out", "Recommendation lists published.", registry=REGISTRY
)
REROUTED = Counter(
    "llmrec_events_rerouted",
    "Events whose Kafka key was not their user_id, repartitioned by user.",
    registry=REGISTRY,
)
DLQ = Counter(
    "llmrec_dlq", "Records sent to a dead-letter topic.", ["source", "kind"], registry=REGISTRY
)
DLQ_SEND_FAILURES = Counter(
    "llmrec_dlq_send_failures",
    "Dead letters that could not be written (the record is dropped, the stream carries on).",
    ["source"],
    registry=REGISTRY,
)
ENCODE_BATCH = Histogram(
    "llmrec_encode_batch_size",
    "Items per encoder batch.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
    registry=REGISTRY,
)
ENCODE_SECONDS = Histogram(
    "llmrec_encode_seconds",
    "Wall time of one encoder batch.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
INDEX_ITEMS = Gauge("llmrec_index_items", "Items in the local HNSW replica.", registry=REGISTRY)
INDEX_SEARCHES = Counter(
    "llmrec_index_searches",
    "Index searches asked for by recommendations, by what answered: memory (asked already "
    "since the index last changed: a user's unchanged topic) or graph (an hnswlib search).",
    ["answer"],
    registry=REGISTRY,
)
INDEX_UPDATED = Gauge(
    "llmrec_index_last_update_timestamp_seconds",
    "Kafka timestamp (Unix seconds) of the newest item-vectors record the local index applied; "
    "0 until it applies one after start. Staleness: time() - this.",
    registry=REGISTRY,
)
BUILD_INFO = Info(
    "llmrec_build",
    "The worker's llmrec version and the encoder it serves (value 1).",
    registry=REGISTRY,
)
PARKED = Counter(
    "llmrec_parked_events",
    "Events parked on events-parked because their item was not indexed yet.",
    registry=REGISTRY,
)
LATENCY = Histogram(
    "llmrec_event_to_recommendation_seconds",
    "Kafka timestamp of an event to the publication of its recommendations.",
    # Dense around the 250 ms objective (deploy/prometheus/alerts.yml), which is a bound.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
LAG = Gauge(
    "llmrec_consumer_lag",
    "Records of the consumer group's input topics between the committed offset and the "
    "high-water mark, by partition assigned to this worker (changelogs and Faust's own topics "
    "excluded).",
    ["topic", "partition"],
    registry=REGISTRY,
)
REBALANCES = Counter(
    "llmrec_rebalances",
    "Consumer-group rebalances this worker has taken part in (Faust's rebalancing count).",
    registry=REGISTRY,
)
REPLICA_LAG = Gauge(
    "llmrec_replica_lag",
    "Records this worker's replica (item-vectors, item-stats) has still to read, by topic.",
    ["topic"],
    registry=REGISTRY,
)


LOOP_RESTARTS = Counter(
    "llmrec_loop_restarts",
    "Background loops (item replica, ...) restarted after an error.",
    ["loop"],
    registry=REGISTRY,
)
BAD_VECTORS = Counter(
    "llmrec_bad_item_vectors", "item-vectors records skipped as unreadable.", registry=REGISTRY
)
BROKER_UP = Gauge(
    "llmrec_broker_up", "1 when the broker answered a metadata request in the last 2 s.",
    registry=REGISTRY,
)  # fmt: skip
FORGOTTEN = Counter(
    "llmrec_users_forgotten",
    "Forget requests applied: the user's state deleted and a tombstone on recommendations.",
    registry=REGISTRY,
)
DUPLICATES = Counter(
    "llmrec_duplicate_events",
    "Events redelivered after a crash and recognised by their event_id: answered, not re-applied.",
    registry=REGISTRY,
)
PARK_HOPS = Counter(
    "llmrec_park_hops",
    "Parked events by what a retry did with them (released, requeued, expired).",
    ["outcome"],
    registry=REGISTRY,
)


def set_build_info(version: str, encoder: str, variant: str, encoder_version: str) -> None:
    """`llmrec_build_info{version, encoder, variant, encoder_version} 1`."""
    BUILD_INFO.info(
        {"version": version, "encoder": encoder, "variant": variant,
         "encoder_version": encoder_version}
    )  # fmt: skip


def render() -> bytes:
    """The registry in the Prometheus text exposition format."""
    return generate_latest(REGISTRY)


STATS_RECORDS = Counter(
    "llmrec_item_stats_records",
    "Item-stats records applied to this worker's engine by its replica.",
    registry=REGISTRY,
)
BAD_STATS = Counter(
    "llmrec_bad_item_stats_records",
    "Item-stats records or updates that could not be read, skipped.",
    registry=REGISTRY,
)
STATS_UPDATES = Counter(
    "llmrec_item_stats_updates",
    "Statistics updates folded into item records by this worker (the items it owns).",
    registry=REGISTRY,
)
STATS_SEND_FAILURES = Counter(
    "llmrec_item_stats_update_send_failures",
    "Statistics updates that could not be sent to their item's owner (the statistics miss them).",
    registry=REGISTRY,
)
STATS_EFFECT = Histogram(
    "llmrec_item_stats_effect_seconds",
    "From an event's Kafka timestamp to its item's record applied to this worker's statistics "
    "(the newest event folded into the record).",
    buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
    registry=REGISTRY,
)
SKIPPED_OFFSETS = Counter(
    "llmrec_skipped_offsets",
    "Offsets Faust committed as processed without delivering them (gaps; expected only on "
    "compacted topics).",
    ["topic"],
    registry=REGISTRY,
)
REFETCHED_OFFSETS = Counter(
    "llmrec_refetched_offsets",
    "Offsets the consumer skipped on a topic that is not compacted and fetched again "
    "(workers.offsets).",
    ["topic"],
    registry=REGISTRY,
)
GC_PAUSE = Histogram(
    "llmrec_gc_pause_seconds",
    "Python garbage collections by generation: each one stops the event loop this long.",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
    registry=REGISTRY,
)
STAGE = Histogram(
    "llmrec_stage_seconds",
    "Seconds the events agent spends on one micro-batch in each stage: admit (parse, validate, "
    "route), encode (review texts), fold (state read, fold, write), stats_send, retrieve, "
    "rank, rerank (MMR and reasons), publish.",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
LOOP_LAG = Histogram(
    "llmrec_event_loop_lag_seconds",
    "How late the worker's event loop woke a 20 ms sleep: time no agent could run.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
    registry=REGISTRY,
)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block into `llmrec_stage_seconds{stage=name}` (`bench pipeline` reports them)."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        STAGE.labels(stage=name).observe(time.perf_counter() - t0)
