"""Plain text out of the HTML fragments that scraped catalogues carry (titles, descriptions).

Only the standard library: tags are removed by a regex (an unclosed tag cut off at the end of a
field included), entities are unescaped, U+FFFD replacement characters dropped and whitespace
collapsed. Good enough for text that is encoded, not rendered.
"""

from __future__ import annotations

import html
import re

__all__ = ["clean_text", "is_markup", "shorten", "strip_html"]

# A tag, or the start of one left unclosed at the end of a truncated field.
_TAG = re.compile(r"<[^<>]*>|<[^<>]*$")
# A fragment that is an attribute tail of a tag cut off before the field began (` Magazines" />`).
_ATTRIBUTE_TAIL = re.compile(r"^[^<>]*\"\s*/?>")
# Attribute debris that no real title holds.
_MARKUP_HINTS = ("/>", 'class="', "a-size-", "href=")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def clean_text(text: str) -> str:
    """Unescape entities and collapse whitespace (for text that is not markup, e.g. reviews)."""
    return " ".join(html.unescape(text).replace("\ufffd", " ").split())


def strip_html(text: str) -> str:
    """Remove tags and attribute debris, unescape entities, collapse whitespace."""
    return clean_text(_TAG.sub(" ", _ATTRIBUTE_TAIL.sub(" ", text)))


def is_markup(text: str) -> bool:
    """True for a field that is an HTML fragment rather than text (e.g. a broken span): nothing
    is left once tags are stripped, or attribute debris is there. `<b>Vogue</b>` is text."""
    return any(hint in text for hint in _MARKUP_HINTS) or not strip_html(text)


def shorten(text: str, limit: int = 100) -> str:
    """`text`'s first sentence when it fits in `limit` characters, else a cut at a word + '…'."""
    if len(text) <= limit:
        return text
    first = _SENTENCE_END.split(text, maxsplit=1)[0]
    if len(first) <= limit:
        return first
    cut = text[: limit - 1]
    if not text[limit - 1].isspace() and " " in cut:  # drop the word cut in two
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-") + "…"
