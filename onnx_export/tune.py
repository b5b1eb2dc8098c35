"""Fine-tune the packaged all-MiniLM-L6-v2 on a dataset's train pairs, then export it.

In-batch negatives (sentence-transformers' MultipleNegativesRankingLoss) on the pairs of
`onnx_export.pairs`, with a plain torch loop: the Trainer API would add `datasets` and
`accelerate` to the export extra for what is a dozen lines here. The tuned weights become a
new model version, exported and gated by the same pipeline as the base model; `current` moves
to it only when asked.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from llmrec.data.contract import ContractDataset
from llmrec.encoder.config import DEFAULT_MAX_LENGTH
from llmrec.eval.data import prepare
from llmrec.exceptions import DatasetError
from onnx_export.deps import require
from onnx_export.export import Source, derived_source, find_source
from onnx_export.pairs import Pair, TrainingPairs, batches, build_pairs
from onnx_export.pipeline import ExportOptions, ExportResult, Step, run_export

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_STEPS",
    "TUNED_TAG",
    "TuneOptions",
    "TuneResult",
    "train",
    "tune_encoder",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_STEPS = 50
"""Sized so that `tune-encoder --dataset magazine-5core` (training + export) takes about 15
minutes on 2 CPU cores shared with other work, where one step of 32 pairs at 256 word pieces
took 13-16 s (50 steps: 50 of an epoch's 97 batches, about 1,600 of its 2,498 pairs)."""
DEFAULT_BATCH_SIZE = 32
TUNED_TAG = "ft"
"""Marks tuned versions: `r2-op18-ft-<weights sha>` next to the base `r2-op18-<sha>`."""
_CHUNK = 8
"""Texts per forward pass inside a batch (see `_embed`)."""
WEIGHTS_DIR = "pytorch"
"""Where a tuned version keeps its PyTorch weights (the fp32 gate's reference, and a re-export)."""


@dataclass(frozen=True, slots=True)
class TuneOptions:
    """How to train. `max_steps` caps optimiser steps (epochs repeat, reshuffled, until then).

    `threads`: torch CPU threads. One by default, because torch's OpenMP threads spin while
    they wait: on 2 cores that another process also used, 2 threads took 21-48 s a step against
    13-16 s for one; on the idle 2 cores they took 6.9 s against 13.0 s (measured). The spin
    policy cannot be changed once another library (LightGBM) has loaded OpenMP. On a host of
    your own, pass more.
    """

    max_steps: int = DEFAULT_MAX_STEPS
    batch_size: int = DEFAULT_BATCH_SIZE
    learning_rate: float = 2e-5
    warmup: float = 0.1
    seed: int = 13
    max_length: int = DEFAULT_MAX_LENGTH
    threads: int = 1

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1; got {self.max_steps}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (in-batch negatives); got {self.batch_size}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1; got {self.threads}")


@dataclass(frozen=True, slots=True)
class TuneResult:
    """What training did: steps, the loss at the start and end, time, device."""

    steps: int
    epochs: int
    loss_first: float
    loss_last: float
    seconds: float
    device: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "epochs": self.epochs,
            "loss_first": round(self.loss_first, 5),
            "loss_last": round(self.loss_last, 5),
            "train_seconds": round(self.seconds, 1),
            "device": self.device,
        }


def train(
    base: Source, pairs: Sequence[Pair], options: TuneOptions, dest: Path, step: Step
) -> TuneResult:
    """Fine-tune `base` on `pairs`, save a sentence-transformers folder to `dest`."""
    torch = require("torch")
    st = require("sentence_transformers")
    loss_class = _mnrl()
    started = time.perf_counter()
    torch.manual_seed(options.seed)
    torch.set_num_threads(options.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = st.SentenceTransformer(str(base.path), device=device, local_files_only=True)
    model.max_seq_length = options.max_length
    loss_fn = loss_class(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate)
    warmup = max(1, int(options.warmup * options.max_steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: _lr_factor(s, warmup, options.max_steps)
    )
    model.train()
    losses: list[float] = []
    epoch = 0
    while len(losses) < options.max_steps:
        plan = batches(pairs, options.batch_size, options.seed + epoch)
        if not plan:
            raise DatasetError("no batch of two distinct pairs to train on")
        epoch += 1
        for batch in plan[: options.max_steps - len(losses)]:
            embedded = [_embed(torch, model, [p[i] for p in batch], device) for i in (0, 1)]
            # labels: unused, a pair's row is its label
            loss = loss_fn.compute_loss_from_embeddings(embedded, None)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
            step(f"training: step {len(losses)}/{options.max_steps}, loss {_tail(losses):.4f}")
            log.info("step %d/%d loss %.4f", len(losses), options.max_steps, losses[-1])
    model.eval()
    dest.mkdir(parents=True, exist_ok=True)
    model.save(str(dest), create_model_card=False)
    return TuneResult(
        steps=len(losses),
        epochs=epoch,
        loss_first=_head(losses),
        loss_last=_tail(losses),
        seconds=time.perf_counter() - started,
        device=device,
    )


def tune_encoder(
    ds: ContractDataset,
    export: ExportOptions,
    options: TuneOptions | None = None,
    step: Step = lambda _msg: None,
) -> tuple[ExportResult, dict[str, Any]]:
    """Build train pairs of `ds`, fine-tune, export the tuned weights as a new version.

    Returns the export result and the tuning record written into every manifest.
    `export.make_current` decides whether `current` moves to the tuned version.
    """
    opts = options or TuneOptions(max_length=export.max_length)
    step("building training pairs from the train split")
    pairs = build_pairs(prepare(ds))
    if len(pairs.all) < 2:
        raise DatasetError(f"{ds.name}: {len(pairs.all)} training pair(s); need at least 2")
    base = find_source()
    export.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=export.out, prefix=".tune-") as scratch:
        trained = train(base, pairs.all, opts, Path(scratch) / WEIGHTS_DIR, step)
        record = _record(ds.name, base, pairs, opts, trained)
        source = derived_source(Path(scratch) / WEIGHTS_DIR, base, TUNED_TAG, record)
        weights = export.out / source.version / WEIGHTS_DIR
        if weights.exists():  # the same weights tuned before: keep one copy
            shutil.rmtree(weights)
        weights.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source.path), weights)
    result = run_export(export, step, source=replace(source, path=weights))
    return result, record


def _record(
    dataset: str, base: Source, pairs: TrainingPairs, options: TuneOptions, trained: TuneResult
) -> dict[str, Any]:
    return {
        "base": {
            "version": base.version,
            "package": base.package,
            "package_version": base.package_version,
            "weights_sha256": base.weights_sha256,
        },
        "data": {
            "dataset": dataset,
            "split": "train (llmrec.eval.data.prepare: leave-last-two-out per user)",
            "pairs_sha256": pairs.sha256(),
            "pairs": pairs.counts(),
        },
        "loss": "MultipleNegativesRankingLoss (in-batch negatives, scale 20)",
        "batch_size": options.batch_size,
        "learning_rate": options.learning_rate,
        "warmup": options.warmup,
        "seed": options.seed,
        "max_length": options.max_length,
        **trained.as_dict(),
    }


def _lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up to the full rate, then linear decay towards zero at `total` steps."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def _mnrl() -> Any:
    """The loss class, from where sentence-transformers 5 keeps it (the old path warns)."""
    return require("sentence_transformers.sentence_transformer.losses").MultipleNegativesRankingLoss


def _embed(torch: Any, model: Any, texts: list[str], device: str) -> Any:
    """Sentence embeddings (with gradients) in input order, run in length-sorted chunks.

    Reviews are short and item texts long; one padded batch of both would spend most of its
    compute on padding (measured on magazine-5core: about half of it at 256 word pieces).
    """
    prep = model.preprocess
    ids = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)["input_ids"]
    order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
    parts = []
    for start in range(0, len(order), _CHUNK):
        rows = order[start : start + _CHUNK]
        parts.append(model(_to(prep([texts[i] for i in rows]), device))["sentence_embedding"])
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[order] = torch.arange(len(order))
    return torch.cat(parts)[inverse.to(device)]


def _to(features: dict[str, Any], device: str) -> dict[str, Any]:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in features.items()}


def _head(losses: Sequence[float], n: int = 10) -> float:
    """Mean of the first `n` losses: one batch's loss is too noisy to report alone."""
    first = losses[:n]
    return math.fsum(first) / len(first)


def _tail(losses: Sequence[float], n: int = 10) -> float:
    last = losses[-n:]
    return math.fsum(last) / len(last)
