"""A small thread-safe LRU cache of vectors keyed by normalised text."""

from __future__ import annotations

import threading
from collections import OrderedDict

from llmrec.types import Vector

__all__ = ["VectorCache"]


class VectorCache:
    """Least-recently-used map text -> vector; `maxsize` 0 disables it (every get misses)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._data: OrderedDict[str, Vector] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> Vector | None:
        """The cached vector (marked most recent) or None."""
        with self._lock:
            vec = self._data.get(key)
            if vec is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return vec

    def put(self, key: str, vec: Vector) -> None:
        """Store a read-only copy of `vec`, evicting the least recently used entry when full."""
        if self.maxsize == 0:
            return
        stored = vec.copy()
        stored.setflags(write=False)
        with self._lock:
            self._data[key] = stored
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.hits = self.misses = 0
