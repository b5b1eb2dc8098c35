"""Garbage-collector pauses, measured: a full collection over a large heap stops the event loop.

`install()` adds a `gc.callbacks` hook that times every collection, counts it in
`llmrec_gc_pause_seconds{generation}` and logs a warning for one longer than `warn_s`.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

from workers import metrics

__all__ = ["install"]

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
            log.warning(
                "garbage collection of generation %d took %.2f s (%d objects tracked)",
                generation, took, len(gc.get_objects(generation)) if generation < 2 else -1,
            )  # fmt: skip

    if not any(getattr(cb, "_llmrec", False) for cb in gc.callbacks):
        on_gc._llmrec = True  # type: ignore[attr-defined]
        gc.callbacks.append(on_gc)
