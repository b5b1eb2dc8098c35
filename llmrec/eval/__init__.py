"""Offline evaluation: any contract dataset through the Engine (Protocol A and B) and baselines."""

from llmrec.eval.metrics import Outcomes, hit_rate, mrr, ndcg, summarise
from llmrec.eval.report import markdown, write_report
from llmrec.eval.runner import DEFAULT_BASELINES, EvalOptions, ProgressFactory, run_eval

__all__ = [
    "DEFAULT_BASELINES",
    "EvalOptions",
    "Outcomes",
    "ProgressFactory",
    "hit_rate",
    "markdown",
    "mrr",
    "ndcg",
    "run_eval",
    "summarise",
    "write_report",
]
