"""The integer view of a train split that every batch model fits on.

Item and user ids are contiguous integers (`EvalData.items[i]`, `EvalData.users[u]`); each user's
train history is the user's distinct train items in time order with their first-event times.
Every user of the dataset is here, not only the evaluated ones: all models learn from the same
train events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np
import numpy.typing as npt
from scipy import sparse

__all__ = ["F64", "I64", "Scorer", "TrainSet", "history_matrix"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class TrainSet:
    """Per-user train histories over `n_items` items (user u's items: `histories[u]`)."""

    n_items: int
    histories: Sequence[I64]
    times: Sequence[F64]

    @property
    def n_users(self) -> int:
        return len(self.histories)

    @cached_property
    def matrix(self) -> sparse.csr_matrix:
        """The binary user x item train matrix."""
        return history_matrix(self.histories, self.n_items)


def history_matrix(histories: Sequence[I64], n_items: int) -> sparse.csr_matrix:
    """A binary (len(histories) x n_items) CSR matrix with a 1 for each item of each history."""
    lengths = [len(h) for h in histories]
    rows = np.repeat(np.arange(len(histories)), lengths)
    cols = np.concatenate(histories) if histories else np.zeros(0, dtype=np.int64)
    x = sparse.csr_matrix(
        (np.ones(len(cols)), (rows, cols)), shape=(len(histories), n_items), dtype=np.float64
    )
    x.data[:] = 1.0  # binarise repeats
    return x


class Scorer(Protocol):
    """A fitted model: one score per item for each history (rows in input order).

    `histories[j]` is a user's items in time order (the items to score against), `now[j]` the
    time of the held-out interaction, `users[j]` the user's integer id. Items the model cannot
    score get -inf; the protocol removes excluded items itself.
    """

    def scores(self, users: I64, histories: Sequence[I64], now: F64) -> F64: ...
