"""Offline evaluation: replay a dataset through the Engine (Protocol A and B) against baselines."""

from llmrec.eval.metrics import hit_rate, mrr, ndcg, summarise
from llmrec.eval.report import markdown, write_report
from llmrec.eval.runner import REFERENCE_ML100K, EvalOptions, ProgressFactory, run_eval

__all__ = [
    "REFERENCE_ML100K",
    "EvalOptions",
    "ProgressFactory",
    "hit_rate",
    "markdown",
    "mrr",
    "ndcg",
    "run_eval",
    "summarise",
    "write_report",
]
