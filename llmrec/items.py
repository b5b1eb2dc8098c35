"""The item text recipe: what the encoder reads for an item.

One function, used by the item agent, the evaluation and the export's retrieval check, so an
item gets the same vector wherever it is encoded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["item_text"]

# "Alien (1979)", "Heat (1995) " -> the trailing parenthesised year.
_TRAILING_YEAR = re.compile(r"\s*\(\s*\d{4}\s*\)\s*$")


def item_text(
    title: str,
    categories: Sequence[str] = (),
    tags: Sequence[str] = (),
    description: str | None = None,
) -> str:
    """Join title, categories, tags and description into one sentence-like text.

    Title first (it carries most signal and survives truncation), then categories and tags as
    short labelled lists, then the free-text description, which is the part truncation may cut.
    A trailing release year such as "(1995)" is dropped: in a short title MiniLM weighs it as
    much as the genres, so movies of one year would cluster regardless of what they are about.
    """
    parts = [_TRAILING_YEAR.sub("", title).strip() or title.strip()]
    if categories:
        parts.append("Genres: " + ", ".join(c.strip() for c in categories if c.strip()) + ".")
    if tags:
        parts.append("Tags: " + ", ".join(t.strip() for t in tags if t.strip()) + ".")
    if description and description.strip():
        parts.append(description.strip())
    return " ".join(p for p in parts if p)
