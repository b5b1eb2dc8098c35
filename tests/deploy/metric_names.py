"""Metric names a worker serves, and the names a PromQL expression refers to."""

from __future__ import annotations

import re

from workers.metrics import REGISTRY

# prometheus_client serves a counter `x` as `x_total`, a histogram as `x_bucket/_sum/_count`
# and an info `x` as `x_info`.
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "info": ("_info",),
}
# The names llmrec's deploy files query: its own and the process collector's.
_NAME = re.compile(r"\b(?:llmrec|process)_[a-z0-9_]+\b")


def served() -> set[str]:
    """Every sample name a worker's /metrics can carry, plus Prometheus's own `up`."""
    names = {"up"}
    for family in REGISTRY.collect():
        names.update(family.name + s for s in _SUFFIXES.get(family.type, ("",)))
    return names


def referenced(expr: str) -> set[str]:
    """The llmrec_* and process_* metric names in a PromQL expression."""
    return set(_NAME.findall(expr))
