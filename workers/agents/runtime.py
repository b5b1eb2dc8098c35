"""The worker runtime: encoder, engine and index replica, started after table recovery.

One `Runtime` service per worker process. Nothing heavy happens at import: the encoder is
loaded and the index snapshot read in `on_start`. Agents wait for `ready()` (the replica has
caught up with `item-vectors`) before they apply user events.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import mode
import numpy as np

from llmrec.candidates import RetrievalConfig
from llmrec.encoder.hashing import HashingEncoder
from llmrec.engine import Engine, EngineConfig
from llmrec.events import ModelInfo
from llmrec.exceptions import SnapshotError
from llmrec.files import write_atomic
from llmrec.index import ItemIndex
from llmrec.ranker.model import Ranker
from llmrec.ranker.store import RankerWatcher
from llmrec.stats_snapshot import StatsPart, check
from llmrec.types import TextEncoder
from workers import gcwatch, kafka_conn, metrics, topics
from workers.app import app
from workers.replica import IndexReplica, VectorRecord
from workers.settings import Settings, get_settings
from workers.stats_replica import StatsReplica

__all__ = ["Runtime", "load_text_encoder"]

_OFFSETS = "item_stats_offsets"  # the stats snapshot's part with the replica's next offsets

log = logging.getLogger(__name__)


def load_text_encoder(settings: Settings) -> tuple[TextEncoder, ModelInfo]:
    """The encoder named by the settings, and the model info published with recommendations."""
    if settings.encoder_backend == "hashing":
        return HashingEncoder(), ModelInfo(encoder="hashing", variant="bow", version="1")
    from llmrec.encoder import load_encoder  # heavy (onnxruntime): only when asked for

    enc = load_encoder(
        settings.model_dir / "all-MiniLM-L6-v2", variant=settings.encoder_variant,
        version=settings.encoder_version,
    )  # fmt: skip
    info = {k: str(v) for k, v in dict(enc.info).items()}
    return enc, ModelInfo(
        encoder=info.get("encoder", "all-MiniLM-L6-v2"),
        variant=info.get("variant", settings.encoder_variant),
        version=info.get("version", "unknown"),
    )


def _llmrec_version() -> str:
    """The installed llmrec distribution's version ("unknown" when run from a bare tree)."""
    try:
        return importlib.metadata.version("llmrec")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@app.service
class Runtime(mode.Service):
    """Holds the per-process pieces the agents and views call into."""

    current: ClassVar[Runtime | None] = None
    _ready: ClassVar[asyncio.Event | None] = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = get_settings()
        key = self.settings.user_id_key
        self.user_id_key: bytes | None = key.get_secret_value().encode() if key else None
        self.encoder: TextEncoder
        self.model: ModelInfo
        self.engine: Engine
        self.replica: IndexReplica
        self.stats_replica: StatsReplica
        self._stats_writing = threading.Lock()  # the periodic write's thread meets shutdown's
        Runtime.current = self

    @classmethod
    async def get(cls) -> Runtime:
        """The started runtime, once its replica has caught up (or the catch-up timed out)."""
        if cls._ready is None:
            cls._ready = asyncio.Event()
        await cls._ready.wait()
        assert cls.current is not None
        rt = cls.current
        for replica, then in (
            (rt.replica, "unknown items will park"),
            (rt.stats_replica, "lists rank with the statistics read so far"),
        ):
            if not replica.caught_up.is_set():
                try:
                    await asyncio.wait_for(
                        replica.caught_up.wait(), rt.settings.startup_catchup_timeout_s
                    )
                except TimeoutError:
                    log.warning("%s did not catch up in time; %s", replica.name, then)
        return rt

    async def on_start(self) -> None:
        s = self.settings
        started = time.perf_counter()
        self.encoder, self.model = load_text_encoder(s)
        metrics.set_build_info(
            _llmrec_version(), self.model.encoder, self.model.variant, self.model.version
        )
        snap_dir = s.state_dir / "index"
        snapshot = IndexReplica.load_snapshot(snap_dir)
        offsets: dict[int, int] = {}
        titles: dict[str, str] = {}
        if snapshot is None:
            index = ItemIndex(self.encoder.dim)
        else:
            index, offsets, titles = snapshot
            log.info("loaded index snapshot: %d items, offsets %s", len(index), offsets)
        index.remember(s.index_answers)
        config = EngineConfig(retrieval=RetrievalConfig().scaled(s.candidate_scale))
        self.engine = Engine(config, index, self.encoder, titles=titles)
        stats_offsets = self._restore_stats()
        for item_id, title in titles.items():  # marks new only what the statistics never saw
            self.engine.note_item(item_id, title)
        self.rankers = RankerWatcher(s.ranker_root)
        self._use_ranker(self.rankers.poll())
        self.add_future(self._watch_ranker())
        self.add_future(self._save_stats_every())
        self.replica = IndexReplica(
            kafka=kafka_conn.client_kwargs(s),
            topic=topics.item_vectors.get_topic_name(),
            index=index,
            snapshot_dir=snap_dir,
            snapshot_every_s=s.snapshot_every_s,
            on_change=self._on_items_changed,
            offsets=offsets,
            titles=titles,
        )
        self.stats_replica = StatsReplica(
            kafka=kafka_conn.client_kwargs(s),
            topic=topics.item_stats.get_topic_name(),
            apply=self.engine.apply_record,
            snapshot_every_s=s.snapshot_every_s,
            offsets=stats_offsets,
        )
        self.add_future(self.replica.run())
        self.add_future(self.replica.probe())
        self.add_future(self.stats_replica.run())
        self.add_future(gcwatch.watch_loop())
        self.add_future(self._freeze_when_loaded())
        log.info(
            "runtime started in %.1f s (%s; candidate scale %g; index answers kept %d)",
            time.perf_counter() - started, self.model, s.candidate_scale, s.index_answers,
        )  # fmt: skip
        if Runtime._ready is None:
            Runtime._ready = asyncio.Event()
        Runtime._ready.set()

    async def _freeze_when_loaded(self) -> None:
        """Once both replicas have caught up, what they loaded (index ids, titles, statistics)
        is frozen out of the cyclic collector (`gcwatch.freeze`)."""
        await self.replica.caught_up.wait()
        await self.stats_replica.caught_up.wait()
        started = time.perf_counter()
        frozen = gcwatch.freeze()
        log.info("%d objects frozen out of garbage collection in %.0f ms", frozen,
                 1000 * (time.perf_counter() - started))  # fmt: skip

    @property
    def _stats_path(self) -> Path:
        return self.settings.state_dir / "stats.bin"

    def _restore_stats(self) -> dict[int, int]:
        """The statistics as last saved, and the `item-stats` offsets they reflect (none when
        there is no readable snapshot: the replica then reads the topic from the start)."""
        path = self._stats_path
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("cannot read %s: %s; statistics start empty", path, exc)
            return {}
        try:
            extra = self.engine.restore_stats(data)
        except SnapshotError as exc:
            log.warning("discarding damaged statistics snapshot %s: %s", path, exc)
            return {}
        try:
            offsets = _offsets_from(extra[_OFFSETS]) if _OFFSETS in extra else {}
        except SnapshotError as exc:
            # Reading `item-stats` from the start is safe: a record adds only what its item's
            # out-list gained over the restored one.
            log.warning("item-stats offsets unreadable (%s); reading the topic again", exc)
            offsets = {}
        log.info("restored statistics from %s (%d bytes), item-stats at %s",
                 path, len(data), offsets)  # fmt: skip
        return offsets

    def save_stats(self) -> None:
        """Write the statistics and the `item-stats` offsets they reflect, atomically."""
        self._write_stats(self._stats_bytes())

    def _stats_bytes(self) -> bytes:
        """The statistics with the offsets they reflect: read on the loop thread, where the
        replica applies records, so the two agree."""
        offsets = self.stats_replica.offsets() if hasattr(self, "stats_replica") else {}
        part = StatsPart(
            [str(p) for p in offsets], {"next": np.fromiter(offsets.values(), np.int64)}
        )
        return self.engine.stats_to_bytes({_OFFSETS: part})

    def _write_stats(self, data: bytes) -> None:
        started = time.perf_counter()
        with self._stats_writing:
            write_atomic(self._stats_path, data)
        log.debug("statistics saved: %d bytes, %.0f ms", len(data),
                  1000 * (time.perf_counter() - started))  # fmt: skip

    async def _save_stats_every(self) -> None:
        while not self.should_stop:
            await self.sleep(self.settings.snapshot_every_s)
            try:
                # megabytes written and fsynced: in a thread, not on the loop every agent shares;
                # an older write landing after a newer one still holds its own offsets
                await asyncio.to_thread(self._write_stats, self._stats_bytes())
            except Exception as exc:  # a full disk must not stop the loop: try again later
                metrics.LOOP_RESTARTS.labels(loop="stats_snapshot").inc()
                log.warning("statistics snapshot failed: %s: %s", type(exc).__name__, exc)

    def _use_ranker(self, ranker: Ranker | None) -> None:
        """Rank with `ranker` from now on (None: keep the one in use)."""
        if ranker is not None:
            self.engine.ranker = ranker
            self.model = self.model.model_copy(update={"ranker": ranker.version})
            log.info("ranker %s in use (%s)", ranker.version, self.rankers.root)

    async def _watch_ranker(self) -> None:
        """Pick up a newly published ranker without a restart (the link is re-read each poll)."""
        while not self.should_stop:
            await self.sleep(self.settings.ranker_poll_s)
            try:
                # loaded and compiled (lleaves, ~0.5 s) off the event loop; swapped on it
                self._use_ranker(await asyncio.to_thread(self.rankers.poll))
            except Exception as exc:
                metrics.LOOP_RESTARTS.labels(loop="ranker_watch").inc()
                log.warning("ranker poll failed: %s: %s", type(exc).__name__, str(exc)[:200])

    async def on_stop(self) -> None:
        if hasattr(self, "replica"):
            self.replica.snapshot()
        if hasattr(self, "engine"):
            self.save_stats()

    async def _on_items_changed(
        self, added: list[tuple[str, VectorRecord]], deleted: list[str]
    ) -> None:
        for item_id in deleted:
            self.engine.forget_item(item_id)
        for item_id, rec in added:
            self.engine.note_item(item_id, rec.title, rec.ts)


def _offsets_from(part: StatsPart) -> dict[int, int]:
    nxt = part.array("next", np.int64, (len(part.ids),))
    check(all(p.isdigit() for p in part.ids) and bool((nxt >= 0).all()), "item-stats offsets")
    return {int(p): int(o) for p, o in zip(part.ids, nxt.tolist(), strict=True)}
