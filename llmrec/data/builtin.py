"""The datasets llmrec knows by name, built in memory from the shared data folder.

- `ml-100k`, `ml-latest-small`: MovieLens, mapped as the replay maps it (`llmrec.data.replay`).
- `magazine-5core`: Amazon 2018 Magazine Subscriptions, 5-core reviews + metadata.
- `magazine-ratings`: the same category's ratings-only CSV + metadata, users with >= 3 items
  (most of its 72k users rated one magazine, which no held-out evaluation can use).
"""

from __future__ import annotations

from pathlib import Path

from llmrec.data.amazon2018 import convert_amazon2018
from llmrec.data.contract import ContractDataset
from llmrec.data.convert import Conversion, convert_movielens
from llmrec.exceptions import DatasetError

__all__ = ["BUILTIN", "MAGAZINE_DIR", "builtin_conversion", "builtin_dataset"]

BUILTIN = ("ml-100k", "ml-latest-small", "magazine-5core", "magazine-ratings")
MAGAZINE_DIR = "amazon2018-magazine-subscriptions"
_MAGAZINE_REVIEWS = "Magazine_Subscriptions_5.json.gz"
_MAGAZINE_RATINGS = "Magazine_Subscriptions.csv"
_MAGAZINE_META = "meta_Magazine_Subscriptions.json.gz"
MAGAZINE_MIN_USER_ITEMS = 3


def builtin_conversion(data_dir: Path, name: str) -> Conversion:
    """The contract records of built-in dataset `name`, read from `data_dir`."""
    if name not in BUILTIN:
        raise DatasetError(f"unknown dataset {name!r}; built in: {', '.join(BUILTIN)}")
    if name.startswith("ml-"):
        return convert_movielens(data_dir, name)
    folder = data_dir / MAGAZINE_DIR
    if not folder.is_dir():
        raise DatasetError(f"dataset {name!r}: folder not found: {folder}")
    if name == "magazine-5core":
        return convert_amazon2018(reviews=folder / _MAGAZINE_REVIEWS, meta=folder / _MAGAZINE_META)
    return convert_amazon2018(
        ratings=folder / _MAGAZINE_RATINGS,
        meta=folder / _MAGAZINE_META,
        min_user_items=MAGAZINE_MIN_USER_ITEMS,
    )


def builtin_dataset(data_dir: Path, name: str) -> ContractDataset:
    """Built-in dataset `name` as a validated `ContractDataset` (errors: source lines first)."""
    return builtin_conversion(data_dir, name).dataset(name)
