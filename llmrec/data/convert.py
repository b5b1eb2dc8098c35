"""What a converter returns, and the MovieLens converter (the mapping lives in `replay`).

A converter turns a source's own files into contract records (plain dicts, as a producer would
send them) plus an account of what it read, skipped and deduplicated. Source lines it cannot
read are `LineError`s, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmrec.data.contract import ContractDataset, LineError, from_records
from llmrec.data.movielens import load_movielens
from llmrec.data.replay import dataset_events, item_records
from llmrec.exceptions import DatasetError

__all__ = ["Conversion", "convert_movielens"]


@dataclass(slots=True)
class Conversion:
    """Contract records of one source, its unreadable lines and named counts of what happened."""

    items: list[dict[str, Any]]
    events: list[dict[str, Any]]
    errors: list[LineError] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def dataset(self, name: str) -> ContractDataset:
        """Validate the records as files would be; the source's line errors come first."""
        ds = from_records(name, self.items, self.events)
        ds.errors = [*self.errors, *ds.errors]
        return ds


def convert_movielens(data_dir: Path, name: str) -> Conversion:
    """MovieLens `name` (ml-100k or ml-latest-small) under `data_dir`, mapped as the replay maps it.

    Events come in timestamp order (ties: ratings before tags), ids `<name>-r<i>` / `<name>-t<i>`.
    """
    try:
        ds = load_movielens(data_dir, name)
    except (ValueError, FileNotFoundError) as exc:
        raise DatasetError(str(exc)) from exc
    except KeyError as exc:
        raise DatasetError(f"{name}: a file lacks the column {exc}") from exc
    items = list(item_records(ds))
    events = list(dataset_events(ds))
    counts = {
        "movies": len(ds.movies),
        "ratings": len(ds.ratings),
        "tags": len(ds.tags),
        "users": len({r.user_id for r in ds.ratings} | {t.user_id for t in ds.tags}),
    }
    return Conversion(items, events, [], counts)
