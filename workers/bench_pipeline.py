"""`llmrec bench pipeline`: throughput and latency through the real broker."""

from __future__ import annotations

__all__ = ["bench_pipeline"]


def bench_pipeline() -> None:
    """Benchmark the pipeline (not implemented yet)."""
