"""Faust's current event, set for a table write made outside the stream's own iteration."""

from __future__ import annotations

import contextvars
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from faust.streams import _current_event  # private; see as_of
from faust.types import EventT

__all__ = ["as_of"]

T = TypeVar("T")


def as_of(event: EventT[bytes], fn: Callable[..., T], *args: Any) -> T:
    """Run `fn` with `event` as Faust's current event, in a private copy of the context.

    A table write takes its changelog partition from `faust.streams.current_event()`, which
    `take_events` leaves unset (faust-streaming #497). Only that context variable is set, and
    only in a copy: `Stream._set_current_event` also sets `stream.current_event`, which the
    take buffer reads, and using it lost one event and answered another twice per batch.
    """

    def run() -> T:
        _current_event.set(weakref.ref(event))
        return fn(*args)

    return contextvars.copy_context().run(run)
