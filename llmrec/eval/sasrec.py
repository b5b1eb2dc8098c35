"""SASRec (Kang & McAuley 2018), a trained sequential baseline for the offline evaluation.

The network is torch-rechub's `SASRec` (causal self-attention over the last `max_len` items,
left-padded, token 0 = padding); RePlay and RecTools cannot be installed beside our pinned
scikit-learn 1.9 / numpy 2. The loop here trains it with full softmax cross-entropy over every
item at every position, early-stops on a validation callback and scores matrices of histories
at once. torch and torch-rechub are the `eval` extra, imported only when a model is fitted.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from llmrec.eval.trainset import F64, I64, Scorer, TrainSet

if TYPE_CHECKING:
    import torch

__all__ = ["SASREC_GRID", "SASRecFit", "SASRecParams", "SASRecScorer", "fit_sasrec", "tune_sasrec"]

log = logging.getLogger(__name__)
_EXTRA_HINT = "SASRec needs torch and torch-rechub: pip install 'llmrec[eval]'"
_SCORE_BATCH = 256


@dataclass(frozen=True, slots=True)
class SASRecParams:
    """One SASRec configuration; `epochs` is the upper bound when early stopping."""

    hidden: int = 64
    max_len: int = 50
    dropout: float = 0.2
    blocks: int = 2
    heads: int = 1
    lr: float = 5e-3
    batch_size: int = 64
    epochs: int = 50
    eval_every: int = 1
    patience: int = 4
    seed: int = 0


SASREC_GRID: tuple[SASRecParams, ...] = (
    SASRecParams(hidden=64, max_len=50, dropout=0.2),
    SASRecParams(hidden=64, max_len=100, dropout=0.2),
    SASRecParams(hidden=128, max_len=50, dropout=0.2),
    SASRecParams(hidden=64, max_len=50, dropout=0.4),
)


@dataclass(frozen=True, slots=True)
class SASRecFit:
    """How a fit went: the kept epoch, the validation curve (epoch, score) and the time spent."""

    params: SASRecParams
    best_epoch: int
    best_score: float | None
    curve: tuple[tuple[int, float], ...]
    epochs_run: int
    train_seconds: float  # gradient steps only
    seconds: float  # the whole fit, validation calls included


def _network(n_items: int, p: SASRecParams) -> Any:
    """torch-rechub's SASRec over tokens 1..n_items (item i is token i + 1; 0 pads)."""
    try:
        from torch_rechub.basic.features import SequenceFeature
        from torch_rechub.basic.initializers import RandomNormal
        from torch_rechub.models.matching.sasrec import SASRec
    except ImportError as exc:
        raise ImportError(f"{_EXTRA_HINT} ({exc})") from exc
    # Item embeddings start at std hidden^-1/2: scaled by sqrt(hidden) on input they match the
    # N(0, 1) position embeddings (with torch-rechub's default std 1e-4 positions drown them).
    seq = SequenceFeature(
        "seq", vocab_size=n_items + 1, embed_dim=p.hidden, pooling="concat", padding_idx=0,
        initializer=RandomNormal(0.0, p.hidden**-0.5),
    )  # fmt: skip
    return SASRec(
        [seq], max_len=p.max_len, dropout_rate=p.dropout, num_blocks=p.blocks, num_heads=p.heads
    )


def _tokens(histories: Sequence[I64], max_len: int) -> torch.Tensor:
    """Left-padded (len(histories) x max_len) tokens of the last `max_len` items (item i -> i+1)."""
    import torch

    out = np.zeros((len(histories), max_len), dtype=np.int64)
    for row, h in enumerate(histories):
        tail = h[len(h) - max_len :] if len(h) > max_len else h
        if len(tail):
            out[row, max_len - len(tail) :] = tail + 1
    return torch.from_numpy(out)


def _encode(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """The (batch x max_len x hidden) outputs of the attention blocks."""
    import torch

    rows = len(tokens)
    if rows == 1:  # torch-rechub's seq_forward squeezes the batch axis away when it is 1
        tokens = torch.cat([tokens, tokens])
    x = {"seq": tokens}
    emb = model.item_emb(x, model.features[:1])[:, 0]
    out: torch.Tensor = model.seq_forward(x, emb)
    return out[:rows]


def _item_weights(model: Any) -> torch.Tensor:
    return model.item_emb.embed_dict["seq"].weight[1:]  # type: ignore[no-any-return]


class SASRecScorer:
    """A trained SASRec: scores every item from the last `max_len` items of each given history."""

    def __init__(self, model: Any, params: SASRecParams, known: npt.NDArray[np.bool_]) -> None:
        self._model = model
        self.params = params
        self._known = known  # items seen in training; the others score -inf
        self.fit: SASRecFit | None = None

    @property
    def info(self) -> dict[str, Any]:
        """What the evaluation report records of the fit: kept epoch and training time."""
        if self.fit is None:
            return {}
        f = self.fit
        return {"best_epoch": f.best_epoch, "epochs_run": f.epochs_run,
                "train_seconds": round(f.train_seconds, 1)}  # fmt: skip

    def scores(self, users: I64, histories: Sequence[I64], now: F64) -> F64:
        import torch

        n_items = len(self._known)
        out = np.empty((len(histories), n_items), dtype=np.float64)
        # Items the model never trained on have untrained input embeddings: leave them out.
        kept = [h[self._known[h]] for h in histories]
        self._model.eval()
        with torch.no_grad():
            for start in range(0, len(kept), _SCORE_BATCH):
                chunk = kept[start : start + _SCORE_BATCH]
                hidden = _encode(self._model, _tokens(chunk, self.params.max_len))[:, -1]
                logits = hidden @ _item_weights(self._model).T
                out[start : start + len(chunk)] = logits.numpy()
        out[:, ~self._known] = -np.inf
        return out


def fit_sasrec(
    train: TrainSet, params: SASRecParams, evaluate: Callable[[Scorer], float] | None = None
) -> tuple[SASRecScorer, SASRecFit]:
    """Train SASRec on the train histories; with `evaluate` (validation NDCG@10, higher is
    better) keep the best of the evaluated epochs and stop after `patience` evaluations without
    gain, otherwise train `params.epochs` epochs. Deterministic given `params.seed`."""
    try:
        import torch
    except ImportError as exc:
        raise ImportError(_EXTRA_HINT) from exc
    started = time.perf_counter()
    known = np.zeros(train.n_items, dtype=bool)
    for h in train.histories:
        known[h] = True
    seqs = _chunks(train.histories, params.max_len)
    rng = np.random.default_rng(params.seed)
    curve: list[tuple[int, float]] = []
    best: tuple[float, int, dict[str, Any]] | None = None
    train_seconds, epoch, stale = 0.0, 0, 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(params.seed)
        model = _network(train.n_items, params)
        scorer = SASRecScorer(model, params, known)
        optimiser = torch.optim.Adam(model.parameters(), lr=params.lr, betas=(0.9, 0.98))
        for epoch in range(1, params.epochs + 1):
            tick = time.perf_counter()
            _train_epoch(model, optimiser, seqs, params, rng)
            train_seconds += time.perf_counter() - tick
            if evaluate is None or (epoch % params.eval_every and epoch != params.epochs):
                continue
            score = float(evaluate(scorer))
            curve.append((epoch, score))
            log.debug("sasrec %s epoch %d: validation %.4f", params, epoch, score)
            if best is None or score > best[0]:
                best, stale = (score, epoch, copy.deepcopy(model.state_dict())), 0
            else:
                stale += 1
                if stale >= params.patience:
                    break
    if best is not None:
        model.load_state_dict(best[2])
    fit = SASRecFit(
        params=params,
        best_epoch=best[1] if best is not None else epoch,
        best_score=best[0] if best is not None else None,
        curve=tuple(curve),
        epochs_run=epoch,
        train_seconds=train_seconds,
        seconds=time.perf_counter() - started,
    )
    scorer.fit = fit
    return scorer, fit


def _chunks(histories: Sequence[I64], max_len: int) -> list[I64]:
    """Every history cut from its end into pieces of `max_len + 1` items (the first piece may be
    shorter), so that every train event is a target once per epoch."""
    return [
        h[max(0, end - max_len - 1) : end] for h in histories for end in range(len(h), 1, -max_len)
    ]


def _train_epoch(
    model: Any, optimiser: Any, seqs: list[I64], params: SASRecParams, rng: np.random.Generator
) -> None:
    """One pass over the sequences in random order: softmax cross-entropy over all items at
    every position."""
    import torch

    model.train()
    order = rng.permutation(len(seqs))
    for start in range(0, len(order), params.batch_size):
        batch = [seqs[i] for i in order[start : start + params.batch_size]]
        inputs = _tokens([s[:-1] for s in batch], params.max_len)
        targets = _tokens([s[1:] for s in batch], params.max_len)
        valid = targets > 0
        hidden = _encode(model, inputs)[valid]
        logits = hidden @ _item_weights(model).T
        loss: Any = torch.nn.functional.cross_entropy(logits, targets[valid] - 1)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


def tune_sasrec(
    train: TrainSet,
    evaluate: Callable[[Scorer], float],
    grid: Sequence[SASRecParams] = SASREC_GRID,
) -> tuple[SASRecScorer, SASRecParams, list[dict[str, Any]]]:
    """Fit every configuration of `grid` with early stopping and keep the best on validation;
    one trial row per configuration (its params, best epoch, validation score, seconds)."""
    if not grid:
        raise ValueError("tune_sasrec needs at least one configuration")
    trials: list[dict[str, Any]] = []
    best: tuple[float, SASRecScorer, SASRecParams] | None = None
    for params in grid:
        scorer, fit = fit_sasrec(train, params, evaluate)
        score = fit.best_score if fit.best_score is not None else float("-inf")
        trials.append({
            **asdict(params), "best_epoch": fit.best_epoch, "epochs_run": fit.epochs_run,
            "val_score": fit.best_score, "seconds": round(fit.seconds, 2),
            "train_seconds": round(fit.train_seconds, 2),
        })  # fmt: skip
        if best is None or score > best[0]:
            best = (score, scorer, params)
    assert best is not None
    return best[1], best[2], trials
