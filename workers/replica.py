"""A full local replica of the item index, fed from the compacted `item-vectors` topic.

Items are encoded once (by whichever worker owns the `items` partition) and every worker
applies every vector: the replica is a plain aiokafka consumer with *manual assignment of all
partitions* and no consumer group, so it is never split by a rebalance. (Faust's GlobalTable
was the alternative; its standby/recovery path has open issues with multiple workers —
faust-streaming/faust#283, #212 — and it would keep a second copy of every vector in RocksDB.)

The index is snapshotted to disk with the next offset of each partition in its metadata, so a
restart loads the snapshot and reads only the tail of the topic instead of all of it.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer

from llmrec.exceptions import ItemIndexError
from llmrec.index import ItemIndex
from llmrec.types import Vector
from workers import metrics
from workers.topic_admin import assign_all

__all__ = ["IndexReplica", "TopicReplica", "VectorRecord", "decode_vector", "encode_vector"]

log = logging.getLogger(__name__)

_MAGIC = b"IV2"
_HEAD = struct.Struct("<3sI")  # magic, header length (32-bit)
_HEADS = {_MAGIC: _HEAD, b"IV1": struct.Struct("<3sH")}  # IV1: 16-bit length, read only


@dataclass(frozen=True, slots=True)
class VectorRecord:
    """One `item-vectors` value: the vector plus what reasons and views need of the item."""

    title: str
    categories: tuple[str, ...]
    ts: float
    vector: Vector


def encode_vector(rec: VectorRecord) -> bytes:
    """Compact binary value: magic `IV2`, 32-bit header length, JSON header, float32 vector."""
    head = orjson.dumps({"title": rec.title, "categories": list(rec.categories), "ts": rec.ts})
    vec = np.ascontiguousarray(rec.vector, dtype="<f4").tobytes()
    return _HEAD.pack(_MAGIC, len(head)) + head + vec


def decode_vector(raw: bytes) -> VectorRecord:
    """Read an `IV2` value, or an `IV1` one (16-bit header length); ValueError if it is neither."""
    fmt = _HEADS.get(bytes(raw[:3]))
    if fmt is None or len(raw) < fmt.size:
        raise ValueError(f"not an item-vector record (starts {bytes(raw[:3])!r})")
    _, n = fmt.unpack_from(raw)
    start, end = fmt.size, fmt.size + n
    if end > len(raw) or (len(raw) - end) % 4:
        raise ValueError(f"item-vector record of {len(raw)} bytes cut short or misaligned")
    try:
        head = orjson.loads(raw[start:end])
        title, ts = head["title"], head["ts"]
        categories = tuple(head.get("categories", ()))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"unreadable item-vector header ({type(exc).__name__})") from None
    vector = np.frombuffer(raw[end:], dtype="<f4").astype(np.float32)
    return VectorRecord(title, categories, ts, vector)


_BACKOFF_MIN_S = 0.5
_BACKOFF_MAX_S = 10.0

OnChange = Callable[[list[tuple[str, VectorRecord]], list[str]], Awaitable[None]]


class TopicReplica:
    """Consumes every partition of one topic, without a group, from the offsets it was given:
    the supervised loop (reconnects with backoff), catch-up, lag and periodic snapshots.
    Subclasses say how to apply a partition's records and how to snapshot."""

    name = "replica"
    """The loop's name in logs and in `llmrec_loop_restarts_total`."""

    def __init__(
        self,
        *,
        kafka: Mapping[str, Any],
        topic: str,
        snapshot_every_s: float,
        offsets: dict[int, int] | None = None,
    ) -> None:
        self.topic = topic
        self._kafka = dict(kafka)  # aiokafka client arguments (workers.kafka_conn)
        self._snapshot_every_s = snapshot_every_s
        self._next: dict[int, int] = dict(offsets or {})
        self._end: dict[int, int] = {}
        self.caught_up = asyncio.Event()
        self.broker_ok_at = 0.0
        self.failures = 0
        self._consumer: AIOKafkaConsumer | None = None

    async def _apply(self, records: list[Any]) -> None:
        """Apply one partition's records, in order."""
        raise NotImplementedError

    def snapshot(self) -> None:
        """Save what was applied with the offsets it reflects (no-op by default)."""

    async def _snapshot_aside(self) -> None:
        """`snapshot` in a thread: writing a 10,000-item index took ~200 ms, which on the
        event loop every agent waited out. This replica applies nothing meanwhile, so the
        snapshot reads still state; `snapshot` must be safe to call from a thread."""
        await asyncio.to_thread(self.snapshot)

    def _polled(self) -> None:
        """Called after every poll (gauges)."""

    def offsets(self) -> dict[int, int]:
        """The next offset to read of each partition read so far."""
        return dict(self._next)

    # -- consuming ---------------------------------------------------------------------------

    def lag(self) -> int:
        return sum(max(0, end - self._next.get(p, 0)) for p, end in self._end.items())

    async def run(self) -> None:
        """Apply records until cancelled; after any error, start again with backoff.

        Progress (`_next`) lives in this object, so a restarted consumer resumes where the last
        one stopped. A broker that dies and comes back costs a few reconnects, never the replica.
        """
        backoff = _BACKOFF_MIN_S
        while True:
            started = time.monotonic()
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                metrics.LOOP_RESTARTS.labels(loop=self.name).inc()
                if time.monotonic() - started > 60.0:
                    backoff = _BACKOFF_MIN_S  # it had been running fine: start over gently
                log.warning(
                    "%s: %s: %s; reconnecting in %.1f s",
                    self.name, type(exc).__name__, str(exc)[:200], backoff,
                )  # fmt: skip
                await asyncio.sleep(backoff)
                backoff = min(_BACKOFF_MAX_S, backoff * 2)

    async def probe(self, every_s: float = 0.5, timeout_s: float = 1.0) -> None:
        """Ask the broker for metadata every `every_s`: `broker_ok_at` says when it last answered
        (and the `llmrec_broker_up` gauge whether that was in the last 2 s).

        A consumer's `getmany` returns empty batches while the broker is down, so polling alone
        cannot tell an idle topic from a dead broker.
        """
        while True:
            consumer = self._consumer
            if consumer is not None:
                try:
                    await asyncio.wait_for(consumer._client.fetch_all_metadata(), timeout_s)
                    self.broker_ok_at = time.time()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    pass
            metrics.BROKER_UP.set(1.0 if self.broker_ok() else 0.0)
            await asyncio.sleep(every_s)

    def broker_ok(self, within_s: float = 2.0) -> bool:
        """Whether the broker answered a metadata request in the last `within_s` seconds."""
        return time.time() - self.broker_ok_at < within_s

    async def _consume(self) -> None:
        """One consumer's life: assign every partition, seek to `_next`, apply records."""
        consumer = AIOKafkaConsumer(
            **self._kafka,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_bytes=16 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        await consumer.start()
        self._consumer = consumer
        try:
            tps = await assign_all(consumer, self.topic, timeout_s=60.0)
            for tp in tps:
                if tp.partition in self._next:
                    consumer.seek(tp, self._next[tp.partition])
                else:
                    await consumer.seek_to_beginning(tp)
            self._end = {tp.partition: o for tp, o in (await consumer.end_offsets(tps)).items()}
            self.broker_ok_at = time.time()
            log.info("replica of %s: resume at %s, end %s", self.topic, self._next, self._end)
            last_snapshot = time.monotonic()
            while True:
                batches = await consumer.getmany(timeout_ms=100, max_records=512)
                for tp, records in batches.items():
                    await self._apply(records)
                    self._next[tp.partition] = records[-1].offset + 1
                if not self.caught_up.is_set():
                    if all(self._next.get(p, 0) >= e for p, e in self._end.items()):
                        log.info("%s caught up at %s", self.name, self._next)
                        self.caught_up.set()
                        await self._snapshot_aside()
                elif time.monotonic() - last_snapshot > self._snapshot_every_s:
                    await self._snapshot_aside()
                    last_snapshot = time.monotonic()
                if not batches:
                    self._end = {
                        tp.partition: o for tp, o in (await consumer.end_offsets(tps)).items()
                    }
                self._polled()
                metrics.REPLICA_LAG.labels(topic=self.topic).set(self.lag())
        finally:
            self._consumer = None
            await consumer.stop()


class IndexReplica(TopicReplica):
    """Consumes all of `item-vectors` into an ItemIndex; snapshots it with its offsets."""

    def __init__(
        self,
        *,
        kafka: Mapping[str, Any],
        topic: str,
        index: ItemIndex,
        snapshot_dir: Path,
        snapshot_every_s: float,
        on_change: OnChange,
        offsets: dict[int, int] | None = None,
        titles: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            kafka=kafka, topic=topic, snapshot_every_s=snapshot_every_s, offsets=offsets
        )
        self.index = index
        self.titles: dict[str, str] = dict(titles or {})
        self._snapshot_dir = snapshot_dir
        self._on_change = on_change
        self._saved: dict[int, int] = dict(self._next)
        # one snapshot at a time: the one at shutdown may meet one still running in its thread
        self._saving = threading.Lock()
        self.newest_ts = 0.0
        """Kafka time (Unix s) of the newest record applied since start: the index's freshness."""

    def _polled(self) -> None:
        metrics.INDEX_ITEMS.set(len(self.index))

    # -- snapshot ----------------------------------------------------------------------------

    @staticmethod
    def load_snapshot(
        snapshot_dir: Path,
    ) -> tuple[ItemIndex, dict[int, int], dict[str, str]] | None:
        """The saved index, next offsets and titles, or None when there is none readable.

        A damaged snapshot is logged and skipped (the replica then rebuilds from the topic); a
        crash between `ItemIndex.save`'s two renames leaves the previous one as `<dir>.old`.
        """
        for candidate in (snapshot_dir, snapshot_dir.with_name(snapshot_dir.name + ".old")):
            if not (candidate / "meta.json").exists():
                continue
            try:
                index, meta = ItemIndex.load(candidate)
            except ItemIndexError as exc:
                log.warning("ignoring unreadable index snapshot %s: %s", candidate, exc)
                continue
            offsets = {int(p): int(o) for p, o in meta.get("offsets", {}).items()}
            return index, offsets, dict(meta.get("titles", {}))
        return None

    def snapshot(self) -> None:
        """Save the index with the offsets it reflects (atomic; no-op when nothing changed).
        Safe from any thread: the index's lock keeps writers out while its graph is written,
        and the offsets are read first, so a record applied meanwhile is only read again."""
        with self._saving:
            self._snapshot()

    def _snapshot(self) -> None:
        offsets = dict(self._next)
        if offsets == self._saved:
            return
        started = time.perf_counter()
        meta = {"topic": self.topic, "offsets": offsets, "titles": dict(self.titles)}
        self.index.save(self._snapshot_dir, meta)
        self._saved = offsets
        log.info(
            "index snapshot: %d items, offsets %s, %.0f ms",
            len(self.index), offsets, 1000 * (time.perf_counter() - started),
        )  # fmt: skip

    async def _apply(self, records: list[Any]) -> None:
        """Apply one partition's records in order: runs of upserts in one batch, then deletes."""
        upserts: dict[str, VectorRecord] = {}
        deleted: list[str] = []
        for rec in records:
            item_id = rec.key.decode("utf-8") if rec.key else ""
            if not item_id:
                continue
            if rec.value is None:
                upserts.pop(item_id, None)
                deleted.append(item_id)
                continue
            try:
                got = decode_vector(rec.value)
                if got.vector.shape != (self.index.dim,) or not np.isfinite(got.vector).all():
                    raise ValueError(f"vector of shape {got.vector.shape} or not finite")
            except (ValueError, KeyError, TypeError, struct.error) as exc:
                # A record the index cannot take would fail the whole batch on every restart.
                metrics.BAD_VECTORS.inc()
                log.error("skipping bad item-vector %s@%d: %s", item_id[:64], rec.offset, exc)
                continue
            upserts[item_id] = got
            if item_id in deleted:
                deleted.remove(item_id)
        for item_id in deleted:
            self.index.delete(item_id)
            self.titles.pop(item_id, None)
        added = list(upserts.items())
        if added:
            ids = [i for i, _ in added]
            self.index.upsert(ids, np.stack([r.vector for _, r in added]))
            for item_id, r in added:
                self.titles[item_id] = r.title
        if added or deleted:
            await self._on_change(added, deleted)
        newest = max((r.timestamp for r in records if r.timestamp is not None), default=None)
        if newest is not None:
            self.newest_ts = max(self.newest_ts, newest / 1000.0)
            metrics.INDEX_UPDATED.set(self.newest_ts)
