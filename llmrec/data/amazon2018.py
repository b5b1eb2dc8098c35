"""Amazon Review Data (2018, Ni, Li and McAuley) into contract records.

Three source files, all optional but one of reviews/ratings:
- reviews, JSON lines (.gz): `reviewerID, asin, overall, unixReviewTime, summary, reviewText`.
  A review becomes a `review` event carrying `rating` = overall and `text` = summary + ". " +
  reviewText (whichever exist); with neither text it becomes a `rating` event. Id `r<line>`.
- ratings, CSV without a header: `asin,reviewerID,rating,unix_ts`. A row becomes a `rating`
  event, id `c<line>`, unless the same user reviewed the same item (the review carries the same
  rating and more), or the row repeats an earlier row exactly.
- metadata, JSON lines (.gz): `asin, title, description[], brand, category[]`. The first line of
  an asin wins (2018 meta files repeat asins). HTML is stripped from every text; a title that is
  markup (most of this release's titles are a broken `<span class="a-size-medium ...`) falls back
  to brand + the description's first sentence, else to the asin.

Every item an event names gets an item record; an item without metadata is titled by its asin.
`min_user_items` keeps only users with at least that many distinct items, after merging.
Events come out in timestamp order (ties keep reviews before ratings, then file order).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from llmrec.data.contract import LineError, iter_lines, no_valid_record, require_file
from llmrec.data.convert import Conversion
from llmrec.data.markup import clean_text, is_markup, shorten, strip_html
from llmrec.events import (
    MAX_ATTRIBUTE_CHARS,
    MAX_CATEGORIES,
    MAX_LABEL_CHARS,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
)
from llmrec.exceptions import DatasetError, InvalidRecordError

__all__ = ["convert_amazon2018", "item_from_meta", "rating_row_event", "review_event"]

# Description paragraphs that are store boilerplate, not about the item.
_BOILERPLATE = ("Learn more about auto-renewal subscriptions",)


def convert_amazon2018(
    *,
    reviews: Path | None = None,
    meta: Path | None = None,
    ratings: Path | None = None,
    min_user_items: int = 1,
    all_meta_items: bool = False,
) -> Conversion:
    """Convert the given files (see the module docstring); `all_meta_items` also keeps
    metadata items that no kept event names (a catalogue with cold items)."""
    if reviews is None and ratings is None:
        raise DatasetError("amazon2018: give a reviews file, a ratings file or both")
    if min_user_items < 1:
        raise ValueError(f"min_user_items must be at least 1, got {min_user_items}")
    errors: list[LineError] = []
    counts: Counter[str] = Counter()
    events = _reviews(reviews, errors, counts) if reviews else []
    if ratings:
        reviewed = {(e["user_id"], e["item_id"]) for e in events}
        events += _ratings(ratings, reviewed, errors, counts)
    events = _active_users(events, min_user_items, counts)
    events.sort(key=lambda e: e["ts"])
    catalogue = _catalogue(meta, errors, counts) if meta else {}
    items = _items(events, catalogue, all_meta_items, counts)
    counts["items"] = len(items)
    counts["events"] = len(events)
    counts["users"] = len({e["user_id"] for e in events})
    counts["line_errors"] = len(errors)
    return Conversion(items, events, errors, dict(counts))


def review_event(doc: Mapping[str, Any], event_id: str) -> dict[str, Any]:
    """One review line as an event, or InvalidRecordError with the reason."""
    event = _base_event(doc.get("reviewerID"), doc.get("asin"), doc.get("unixReviewTime"), event_id)
    rating = _rating(doc.get("overall"), "overall")
    text = _review_text(doc.get("summary"), doc.get("reviewText"))
    if text:
        return {**event, "type": "review", "rating": rating, "text": text}
    return {**event, "type": "rating", "rating": rating}


def rating_row_event(row: list[str], event_id: str) -> dict[str, Any]:
    """One ratings-CSV row (`asin,user,rating,ts`) as a `rating` event."""
    if len(row) < 4:
        raise InvalidRecordError(f"expected 4 columns (item,user,rating,ts), got {len(row)}")
    item, user, rating, ts = (c.strip() for c in row[:4])
    return {**_base_event(user, item, ts, event_id), "type": "rating", "rating": _rating(rating)}


def item_from_meta(doc: Mapping[str, Any]) -> dict[str, Any]:
    """One metadata line as an item record (HTML stripped, markup titles replaced)."""
    asin = _id(doc.get("asin"), "asin")
    brand = strip_html(_str(doc.get("brand")))
    description = _description(doc.get("description"))
    raw_title = _str(doc.get("title"))
    title = "" if is_markup(raw_title) else strip_html(raw_title)
    if not title:
        title = ": ".join(p for p in (brand, shorten(description or "")) if p) or asin
    record: dict[str, Any] = {
        "item_id": asin,
        "title": shorten(title, MAX_TITLE_CHARS),
        "categories": _categories(doc.get("category")),
        "ts": 0,
    }
    if description:
        record["description"] = description[:MAX_TEXT_CHARS]
    if brand:
        record["attributes"] = {"brand": brand[:MAX_ATTRIBUTE_CHARS]}
    return record


# --- reading the source files --------------------------------------------------------------


def _json_lines(path: Path, errors: list[LineError]) -> Iterator[tuple[int, dict[str, Any]]]:
    require_file(path)
    for line, raw in enumerate(iter_lines(path), 1):
        if not raw.strip():
            continue
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            errors.append(LineError(str(path), line, f"not valid JSON: {exc}"))
            continue
        if isinstance(doc, dict):
            yield line, doc
        else:
            errors.append(LineError(str(path), line, "expected a JSON object"))


def _reviews(path: Path, errors: list[LineError], counts: Counter[str]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for line, doc in _json_lines(path, errors):
        try:
            event = review_event(doc, f"r{line}")
        except InvalidRecordError as exc:
            errors.append(LineError(str(path), line, exc.reason))
            continue
        key = (event["user_id"], event["item_id"], event["ts"], event["rating"], event.get("text"))
        if key in seen:
            counts["review_duplicates"] += 1
            continue
        seen.add(key)
        events.append(event)
    _nonempty(path, len(events) + counts["review_duplicates"], errors)
    counts["reviews"] = len(events)
    return events


def _ratings(
    path: Path,
    reviewed: set[tuple[str, str]],
    errors: list[LineError],
    counts: Counter[str],
) -> list[dict[str, Any]]:
    require_file(path)
    events: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    valid = 0
    reader = csv.reader(iter_lines(path))
    for row in reader:
        if not any(c.strip() for c in row):
            continue
        try:
            event = rating_row_event(row, f"c{reader.line_num}")
        except InvalidRecordError as exc:
            errors.append(LineError(str(path), reader.line_num, exc.reason))
            continue
        valid += 1
        key = (event["user_id"], event["item_id"], event["rating"], event["ts"])
        if key in seen:
            counts["rating_duplicates"] += 1
        elif key[:2] in reviewed:
            counts["ratings_with_review"] += 1
        else:
            events.append(event)
        seen.add(key)
    _nonempty(path, valid, errors)
    counts["rating_rows"] = valid
    return events


def _catalogue(
    path: Path, errors: list[LineError], counts: Counter[str]
) -> dict[str, dict[str, Any]]:
    catalogue: dict[str, dict[str, Any]] = {}
    for line, doc in _json_lines(path, errors):
        try:
            record = item_from_meta(doc)
        except InvalidRecordError as exc:
            errors.append(LineError(str(path), line, exc.reason))
            continue
        if record["item_id"] in catalogue:
            counts["meta_duplicates"] += 1
            continue
        counts["meta_markup_titles"] += is_markup(_str(doc.get("title")))
        catalogue[record["item_id"]] = record
    _nonempty(path, len(catalogue), errors)
    counts["meta_items"] = len(catalogue)
    return catalogue


# --- merging ---------------------------------------------------------------------------------


def _active_users(
    events: list[dict[str, Any]], min_items: int, counts: Counter[str]
) -> list[dict[str, Any]]:
    items_of: dict[str, set[str]] = {}
    for e in events:
        items_of.setdefault(e["user_id"], set()).add(e["item_id"])
    keep = {u for u, items in items_of.items() if len(items) >= min_items}
    kept = [e for e in events if e["user_id"] in keep]
    counts["users_dropped"] = len(items_of) - len(keep)
    counts["events_dropped"] = len(events) - len(kept)
    return kept


def _items(
    events: list[dict[str, Any]],
    catalogue: dict[str, dict[str, Any]],
    all_meta_items: bool,
    counts: Counter[str],
) -> list[dict[str, Any]]:
    used = dict.fromkeys(e["item_id"] for e in events)
    items = [rec for asin, rec in catalogue.items() if all_meta_items or asin in used]
    missing = [{"item_id": asin, "title": asin, "ts": 0} for asin in used if asin not in catalogue]
    counts["items_without_meta"] = len(missing)
    counts["meta_items_unused"] = sum(asin not in used for asin in catalogue)
    return items + missing


# --- fields ----------------------------------------------------------------------------------


def _base_event(user: object, item: object, ts: object, event_id: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "user_id": _id(user, "user"),
        "item_id": _id(item, "item"),
        "ts": _number(ts, "timestamp"),
    }


def _id(value: object, what: str) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise InvalidRecordError(f"{what} id missing or not a string")


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidRecordError(f"{what} missing or not a number")
    try:
        number = float(value)
    except ValueError as exc:
        raise InvalidRecordError(f"{what} is not a number: {value!r}") from exc
    if not 0 <= number < float("inf"):
        raise InvalidRecordError(f"{what} out of range: {value!r}")
    return int(number) if number.is_integer() else number


def _rating(value: object, what: str = "rating") -> float:
    rating = float(_number(value, what))
    if not 1 <= rating <= 5:
        raise InvalidRecordError(f"{what} must be 1-5, got {value!r}")
    return rating


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _review_text(summary: object, body: object) -> str:
    head, text = clean_text(_str(summary)), clean_text(_str(body))
    if head and text:
        text = f"{head}{' ' if head[-1] in '.!?…' else '. '}{text}"
    return (text or head)[:MAX_TEXT_CHARS]


def _description(value: object) -> str | None:
    parts = (strip_html(p) for p in _strings(value))
    kept = dict.fromkeys(p for p in parts if p and not p.startswith(_BOILERPLATE))
    return " ".join(kept) or None


def _categories(value: object) -> list[str]:
    names = dict.fromkeys(
        shorten(c, MAX_LABEL_CHARS) for c in (strip_html(v) for v in _strings(value)) if c
    )
    return list(names)[:MAX_CATEGORIES]


def _nonempty(path: Path, valid: int, errors: list[LineError]) -> None:
    if valid == 0:
        raise no_valid_record(str(path), [e for e in errors if e.source == str(path)])
