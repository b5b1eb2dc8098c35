"""Text normalisation applied before tokenising and used as the cache key."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from llmrec.exceptions import EncoderError

__all__ = ["normalize_text", "normalize_texts"]


def normalize_text(text: object) -> str:
    """NFKC-fold `text` and collapse runs of whitespace to one space.

    NFKC maps full-width and compatibility characters to one form, so the same words give the
    same vector and cache key. Raises EncoderError for non-strings and blank text: an empty
    embedding is meaningless, and silently returning one hides an upstream bug.
    """
    if not isinstance(text, str):
        raise EncoderError(f"encoder input must be str, got {type(text).__name__}")
    normalised = " ".join(unicodedata.normalize("NFKC", text).split())
    if not normalised:
        raise EncoderError("encoder input is empty or whitespace-only; nothing to encode")
    return normalised


def normalize_texts(texts: Sequence[str]) -> list[str]:
    """Normalise every text, naming the position of the first bad one in the error."""
    if isinstance(texts, str):
        raise EncoderError("encode() takes a sequence of texts, not a single str")
    out = []
    for i, text in enumerate(texts):
        try:
            out.append(normalize_text(text))
        except EncoderError as exc:
            raise EncoderError(f"text #{i}: {exc}") from None
    return out
