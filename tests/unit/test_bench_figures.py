"""The pipeline bench's reading of the worker's Prometheus histograms."""

from __future__ import annotations

from workers.bench_pipeline import (
    _histogram_over,
    _histogram_summary,
    _stage_sums,
    cost_model,
    searches_from_memory,
)

NAME = "llmrec_event_loop_lag_seconds"


def _text(counts: dict[str, int], total: float) -> str:
    lines = [f'{NAME}_bucket{{le="{le}"}} {n}' for le, n in counts.items()]
    return "\n".join([*lines, f"{NAME}_sum {total}", f"{NAME}_count {counts['+Inf']}"])


def test_growth_since_before_is_counted_above_a_bound_and_summarised() -> None:
    before = _text({"0.05": 10, "0.1": 10, "0.25": 11, "+Inf": 11}, 0.5)
    after = _text({"0.05": 95, "0.1": 96, "0.25": 99, "+Inf": 100}, 3.0)
    assert _histogram_over(after, NAME, 0.1, before=before) == 3  # (100 - 11) - (96 - 10)
    assert _histogram_over(after, NAME, 0.25, before=before) == 1
    summary = _histogram_summary(after, NAME, before=before)
    assert summary["records"] == 89
    assert summary["mean"] == round(2.5 / 89, 4)
    assert summary["p50_at_most"] == 0.05
    assert summary["p95_at_most"] == 0.05  # 85 of 89 by 0.05
    assert summary["p99_at_most"] == float("inf")  # 88 of 89 by 0.25, short of 88.11


def test_stage_sums_read_seconds_and_micro_batches_by_stage() -> None:
    text = "\n".join(
        [
            'llmrec_stage_seconds_bucket{le="0.5",stage="retrieve"} 3.0',
            'llmrec_stage_seconds_sum{stage="retrieve"} 1.25',
            'llmrec_stage_seconds_count{stage="retrieve"} 4.0',
            'llmrec_stage_seconds_sum{stage="fold"} 0.5',
            'llmrec_stage_seconds_count{stage="fold"} 5.0',
        ]
    )
    assert _stage_sums(text) == {"retrieve": 1.25, "fold": 0.5}
    assert _stage_sums(text, "count") == {"retrieve": 4.0, "fold": 5.0}


def test_cost_model_splits_cpu_into_per_event_and_per_batch_parts() -> None:
    # 1.5 ms an event and 5 ms a micro-batch, read back from runs at three batch sizes
    runs = [{"events_per_batch": b, "worker_cpu_ms": 1.5 + 5.0 / b} for b in (2.0, 10.0, 80.0)]
    model = cost_model([*runs, {"events_per_batch": None, "worker_cpu_ms": 9.0}])
    assert model is not None
    assert (model["per_event_ms"], model["per_batch_ms"]) == (1.5, 5.0)
    assert model["worst_residual_ms"] == 0.0
    assert model["runs"] == 3
    assert cost_model(runs[:1] * 2) is None  # one batch size: nothing to separate


def test_searches_from_memory_is_the_share_answered_from_memory_between_two_pages() -> None:
    def page(memory: float, graph: float) -> str:
        return "\n".join(
            [
                f'llmrec_index_searches_total{{answer="memory"}} {memory}',
                f'llmrec_index_searches_total{{answer="graph"}} {graph}',
            ]
        )

    assert searches_from_memory(page(10, 30), page(40, 40)) == 0.75  # 30 of 40 since
    assert searches_from_memory(page(5, 5), page(5, 5)) is None  # nothing asked
    assert searches_from_memory("", page(1, 2)) == 0.333  # no counter yet: from zero
