"""Leave-last-out splits: per user, by time, last = test, second-last = validation, rest = train."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from llmrec.data.movielens import Interaction

__all__ = ["LeaveLastOut", "leave_last_out"]


@dataclass(frozen=True, slots=True)
class LeaveLastOut:
    """Per-user histories split by time; users with fewer than 3 interactions are train-only."""

    train: dict[str, list[Interaction]]
    validation: dict[str, Interaction]
    test: dict[str, Interaction]


def leave_last_out(ratings: Sequence[Interaction]) -> LeaveLastOut:
    """Split by timestamp; ties keep file order (a stable sort), which is how the data arrives."""
    by_user: dict[str, list[Interaction]] = defaultdict(list)
    for r in ratings:
        by_user[r.user_id].append(r)
    train: dict[str, list[Interaction]] = {}
    val: dict[str, Interaction] = {}
    test: dict[str, Interaction] = {}
    for user, rows in by_user.items():
        rows.sort(key=lambda r: r.ts)
        if len(rows) < 3:
            train[user] = rows
            continue
        train[user], val[user], test[user] = rows[:-2], rows[-2], rows[-1]
    return LeaveLastOut(train, val, test)
