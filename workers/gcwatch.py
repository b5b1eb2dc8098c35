"""What stops the worker's event loop, measured: garbage collections and any other stall.

`install()` adds a `gc.callbacks` hook that times every collection, counts it in
`llmrec_gc_pause_seconds{generation}` and logs a warning for one longer than `warn_s`.
`watch_loop()` sleeps a few milliseconds at a time and records by how much each sleep overran
(`llmrec_event_loop_lag_seconds`): a lag is time no agent could run.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

from workers import metrics

__all__ = ["freeze", "install", "uninstall", "watch_loop"]

log = logging.getLogger(__name__)

_started: dict[int, float] = {}


def install(warn_s: float = 0.2) -> None:
    """Start timing collections (idempotent)."""

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        generation = int(info.get("generation", 0))
        if phase == "start":
            _started[generation] = time.perf_counter()
            return
        began = _started.pop(generation, None)
        if began is None:
            return
        took = time.perf_counter() - began
        metrics.GC_PAUSE.labels(generation=str(generation)).observe(took)
        if took > warn_s:
            log.warning("garbage collection of generation %d took %.2f s", generation, took)

    if not any(getattr(cb, "_llmrec", False) for cb in gc.callbacks):
        on_gc._llmrec = True  # type: ignore[attr-defined]
        gc.callbacks.append(on_gc)


def freeze() -> int:
    """Collect once, then move every object alive now out of the cyclic collector's reach
    (`gc.freeze`); returns how many. A full collection walks every tracked object, ~170 ms with
    a 10,000-item catalogue loaded, and stops the loop that long; frozen objects are still
    freed when their last reference goes, only cycles among them are never collected."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def uninstall() -> None:
    """Stop timing collections."""
    gc.callbacks[:] = [cb for cb in gc.callbacks if not getattr(cb, "_llmrec", False)]


async def watch_loop(every_s: float = 0.02, warn_s: float = 0.5) -> None:
    """Record the event loop's lag until cancelled; log a stall longer than `warn_s`."""
    while True:
        began = time.perf_counter()
        await asyncio.sleep(every_s)
        lag = max(0.0, time.perf_counter() - began - every_s)
        metrics.LOOP_LAG.observe(lag)
        if lag > warn_s:
            log.warning("the event loop was blocked for %.2f s", lag)
