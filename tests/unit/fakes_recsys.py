"""Test helpers for the recommender core: an index built with the model-free encoder."""

from __future__ import annotations

from llmrec.encoder.hashing import HashingEncoder
from llmrec.index import ItemIndex

__all__ = ["HashingEncoder", "build_index"]


def build_index(encoder: HashingEncoder, items: dict[str, str]) -> ItemIndex:
    """An ItemIndex holding `items` (id -> text) encoded by `encoder`."""
    index = ItemIndex(encoder.dim)
    ids = list(items)
    index.upsert(ids, encoder.encode([items[i] for i in ids]))
    return index
