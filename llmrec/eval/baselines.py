"""Batch baselines, each a `Scorer` fitted on the train split, with the grid it is tuned over.

Every baseline reads the same `TrainSet` as the hybrid (all users' train pairs) and scores every
item for a history; the protocol removes excluded items and ranks with random tie-breaking.
Grids are generic (no value picked for one dataset); Protocol A chooses from them on validation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import sparse
from scipy.linalg import lapack

from llmrec.eval.sasrec import SASREC_GRID, SASRecParams, fit_sasrec
from llmrec.eval.trainset import F64, I64, Scorer, TrainSet, history_matrix
from llmrec.types import Vectors

__all__ = [
    "BASELINES",
    "BaselineSpec",
    "MatrixScorer",
    "content_scores",
    "ease_weights",
    "itemknn_weights",
    "pop_scores",
]

Params = Mapping[str, Any]
Fitter = Callable[[Params], Scorer]
Validate = Callable[[Scorer], float]
"""Validation NDCG@10 of a scorer (models that train in epochs early-stop on it)."""


@dataclass(frozen=True, slots=True)
class BaselineSpec:
    """A baseline: its report name, its validation grid, and how to fit it on a train set.

    `prepare(train, item_vectors, validate)` does the work shared by every grid point once and
    returns the function that fits one point.
    """

    name: str
    grid: Sequence[Params]
    prepare: Callable[[TrainSet, Vectors, Validate], Fitter]


# -- scorers ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MatrixScorer:
    """Scores = binary history row @ `weights` (item x item)."""

    weights: F64
    n_items: int

    def scores(self, users: I64, histories: Sequence[I64], now: F64) -> F64:
        x = history_matrix(histories, self.n_items)
        return np.asarray(x @ self.weights, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class ConstantScorer:
    """The same scores for every history (plain popularity)."""

    values: F64

    def scores(self, users: I64, histories: Sequence[I64], now: F64) -> F64:
        return np.tile(self.values, (len(histories), 1))


@dataclass(frozen=True, slots=True)
class RecentPopularity:
    """Train interactions up to the held-out time, each halving every `half_life_s`.

    No look-ahead: an interaction after `now` counts nothing for that user's ranking.
    """

    ts: F64
    items: I64
    n_items: int
    half_life_s: float

    def scores(self, users: I64, histories: Sequence[I64], now: F64) -> F64:
        out = np.zeros((len(now), self.n_items))
        for r, t in enumerate(now):
            k = int(np.searchsorted(self.ts, t, side="right"))
            w = np.exp2(-(t - self.ts[:k]) / self.half_life_s)
            out[r] = np.bincount(self.items[:k], weights=w, minlength=self.n_items)
        return out


@dataclass(frozen=True, slots=True)
class TransitionScorer:
    """Last-item transitions: sum over the last `n_last` items of decayed transition counts."""

    transitions: sparse.csr_matrix
    n_last: int
    decay: float
    prior: F64

    def scores(self, users: I64, histories: Sequence[I64], now: F64) -> F64:
        n_items = self.transitions.shape[0]
        rows, cols, vals = [], [], []
        for r, h in enumerate(histories):
            last = h[::-1][: self.n_last]
            rows += [r] * len(last)
            cols += last.tolist()
            vals += [self.decay**j for j in range(len(last))]
        w = sparse.csr_matrix((vals, (rows, cols)), shape=(len(histories), n_items))
        s = np.asarray((w @ self.transitions).todense(), dtype=np.float64)
        return s + self.prior[None, :]


@dataclass(frozen=True, slots=True)
class ContentScorer:
    """Cosine between the mean vector of the history's items and every item vector."""

    vectors: Vectors

    def scores(self, users: I64, histories: Sequence[I64], now: F64) -> F64:
        x = history_matrix(histories, len(self.vectors))
        return content_scores(x, self.vectors)


@dataclass(frozen=True, slots=True)
class ALSScorer:
    """implicit's ALS; the user factors are recomputed from the given history."""

    model: Any
    n_items: int

    def scores(self, users: I64, histories: Sequence[I64], now: F64) -> F64:
        x = history_matrix(histories, self.n_items)
        factors = np.asarray(self.model.recalculate_user(np.arange(len(histories)), x))
        items = np.asarray(self.model.item_factors)
        return np.asarray(factors @ items.T, dtype=np.float64)


# -- fitting ---------------------------------------------------------------------------------


def pop_scores(x: sparse.csr_matrix) -> F64:
    """Interaction count of each item (one row, broadcast to every user)."""
    return np.asarray(x.sum(axis=0), dtype=np.float64).ravel()


def cosine_similarity(x: sparse.csr_matrix) -> F64:
    """Dense item-item cosine similarity of the columns of `x`, zero diagonal."""
    xc = x.tocsc().astype(np.float64)
    norms = np.sqrt(np.asarray(xc.multiply(xc).sum(axis=0)).ravel())
    norms[norms == 0] = 1.0
    sim = (xc.T @ xc).toarray() / np.outer(norms, norms)
    np.fill_diagonal(sim, 0.0)
    return np.asarray(sim, dtype=np.float64)


def top_k_columns(sim: F64, k: int) -> F64:
    """`sim` with each target column keeping only its top `k` entries."""
    if k >= sim.shape[0]:
        return sim
    cut = np.partition(sim, -k, axis=0)[-k, :]
    return np.where(sim >= cut[None, :], sim, 0.0)


def itemknn_weights(x: sparse.csr_matrix, k: int = 400) -> F64:
    """Cosine item-item similarity, zero diagonal, each target column keeping its top `k`."""
    return top_k_columns(cosine_similarity(x), k)


def _spd_inverse(g: F64) -> F64:
    """Inverse of a symmetric positive definite matrix through Cholesky (half LU's work)."""
    c, info = lapack.dpotrf(g, lower=False, clean=True, overwrite_a=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky failed (info={info})")
    inv, info = lapack.dpotri(c, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"inverse failed (info={info})")
    upper = np.triu(inv)
    out: F64 = upper + np.triu(upper, 1).T
    return out


def ease_weights(x: sparse.csr_matrix, lam: float = 100.0) -> F64:
    """EASE (Steck 2019): B = I - P / diag(P), P = (X'X + lam I)^-1, zero diagonal.

    The direct closed form, the reference `EaseScorer` is tested against.
    """
    g = (x.T @ x).toarray().astype(np.float64)
    g[np.diag_indices_from(g)] += lam
    p = _spd_inverse(g)
    b: F64 = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


def content_scores(x: sparse.csr_matrix, item_vectors: Vectors) -> F64:
    """Cosine between each user's mean history item vector and every item vector."""
    profile = np.asarray(x @ item_vectors, dtype=np.float64)
    norms = np.linalg.norm(profile, axis=1, keepdims=True)
    profile /= np.where(norms > 0, norms, 1.0)
    return np.asarray(profile @ item_vectors.T.astype(np.float64), dtype=np.float64)


def _pop(train: TrainSet, vectors: Vectors, validate: Validate) -> Fitter:
    counts = pop_scores(train.matrix)
    return lambda _: ConstantScorer(counts)


def _recent_pop(train: TrainSet, vectors: Vectors, validate: Validate) -> Fitter:
    ts = np.concatenate(train.times) if train.n_users else np.zeros(0)
    items = np.concatenate(train.histories) if train.n_users else np.zeros(0, dtype=np.int64)
    order = np.argsort(ts, kind="stable")
    return lambda p: RecentPopularity(
        ts[order], items[order], train.n_items, float(p["half_life_days"]) * 86_400.0
    )


def _itemknn(train: TrainSet, vectors: Vectors, validate: Validate) -> Fitter:
    sim = cosine_similarity(train.matrix)
    return lambda p: MatrixScorer(top_k_columns(sim, int(p["k"])), train.n_items)


@dataclass(frozen=True, slots=True)
class EaseScorer:
    """EASE scores from one eigendecomposition, exact for any lambda (see `_ease`).

    With the item Gram matrix G = X'X = Q diag(w) Q' (items side) P = (G + lam I)^-1 is
    Q diag(1/(w + lam)) Q'. With more items than users (users side) Woodbury gives
    lam P = I - Z' diag(1/(s + lam)) Z, where X X' = V diag(s) V' and Z = V' X. Either way
    scores = x - (x P) / diag(P), the closed form of x B with B's zero diagonal; the factor
    1/lam cancels, so the users side uses lam P directly.
    """

    basis: F64  # Q' (items side) or Z (users side): (r, n_items)
    spectrum: F64
    lam: float
    items_side: bool

    def scores(self, users: I64, histories: Sequence[I64], now: F64) -> F64:
        x = history_matrix(histories, self.basis.shape[1]).toarray()
        inv = 1.0 / (self.spectrum + self.lam)
        xp = ((x @ self.basis.T) * inv[None, :]) @ self.basis
        diag = (self.basis**2).T @ inv
        if not self.items_side:  # lam P = I - Z' diag(inv) Z
            xp, diag = x - xp, 1.0 - diag
        out: F64 = x - xp / diag[None, :]
        return out


def _ease(train: TrainSet, vectors: Vectors, validate: Validate) -> Fitter:
    """Decompose the smaller Gram matrix once; every lambda of the grid is then cheap."""
    x = train.matrix
    items_side = train.n_items <= train.n_users
    if items_side:
        w, q = np.linalg.eigh((x.T @ x).toarray())
        basis, spectrum = q.T, w
    else:
        s, v = np.linalg.eigh((x @ x.T).toarray())
        basis, spectrum = np.asarray(x.T @ v).T, s
    spectrum = np.clip(spectrum, 0.0, None)  # a Gram matrix is PSD; drop rounding negatives
    return lambda p: EaseScorer(basis, spectrum, float(p["lam"]), items_side)


def transition_counts(train: TrainSet) -> sparse.csr_matrix:
    """Counts of item a followed directly by item b in users' train histories."""
    empty = np.zeros(0, dtype=np.int64)
    src = np.concatenate([h[:-1] for h in train.histories if len(h) > 1] or [empty])
    dst = np.concatenate([h[1:] for h in train.histories if len(h) > 1] or [empty])
    n = train.n_items
    return sparse.csr_matrix(
        (np.ones(len(src)), (src.astype(np.int64), dst.astype(np.int64))), shape=(n, n)
    )


def _transition(train: TrainSet, vectors: Vectors, validate: Validate) -> Fitter:
    trans = transition_counts(train)
    counts = pop_scores(train.matrix)
    # The popularity prior is scaled below one transition, so it only orders ties of the
    # transition scores (beta 0: no prior, ties left as they are).
    prior = counts / max(float(counts.max(initial=0.0)), 1.0)
    return lambda p: TransitionScorer(
        trans, int(p["n_last"]), float(p["decay"]), float(p["beta"]) * prior
    )


def _content(train: TrainSet, vectors: Vectors, validate: Validate) -> Fitter:
    return lambda _: ContentScorer(vectors)


def _als(train: TrainSet, vectors: Vectors, validate: Validate) -> Fitter:
    try:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError("the ALS baseline needs `implicit`: pip install 'llmrec[eval]'") from exc
    x = train.matrix.tocsr().astype(np.float32)

    def fit(p: Params) -> Scorer:
        # implicit parallelises itself; a BLAS thread pool under it only oversubscribes.
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=int(p["factors"]), regularization=float(p["reg"]),
                alpha=float(p["alpha"]), iterations=15, random_state=0,
            )  # fmt: skip
            model.fit(x, show_progress=False)
        return ALSScorer(model, train.n_items)

    return fit


def _sasrec(train: TrainSet, vectors: Vectors, validate: Validate) -> Fitter:
    return lambda p: fit_sasrec(train, SASRecParams(**p), validate)[0]


BASELINES: dict[str, BaselineSpec] = {
    spec.name.lower(): spec
    for spec in (
        BaselineSpec("Pop", ({},), _pop),
        BaselineSpec(
            "RecentPop",
            tuple({"half_life_days": d} for d in (1, 7, 30, 90, 365, 3650, math.inf)),
            _recent_pop,
        ),
        BaselineSpec(
            "ItemKNN", tuple({"k": k} for k in (10, 25, 50, 100, 200, 400, 1000)), _itemknn
        ),
        BaselineSpec(
            "EASE",
            tuple({"lam": lam} for lam in (1, 10, 50, 100, 200, 500, 1000, 3000)),
            _ease,
        ),
        BaselineSpec(
            "ALS",
            tuple(
                {"factors": f, "reg": r, "alpha": a}
                for f in (32, 128)
                for r in (0.01, 0.1)
                for a in (1.0, 10.0)
            ),
            _als,
        ),
        BaselineSpec(
            "Transition",
            tuple(
                {"n_last": n, "decay": d, "beta": b}
                for n in (1, 3, 10)
                for d in (0.5, 0.9)
                for b in (0.0, 0.5)
            ),
            _transition,
        ),
        BaselineSpec("Content", ({},), _content),
        BaselineSpec("SASRec", tuple(asdict(p) for p in SASREC_GRID), _sasrec),
    )
}
