"""The event contract: item upserts, user interactions and published recommendations.

Every record that enters llmrec is parsed here; a record that breaks the contract raises
`InvalidRecordError` with a reason fit for the dead-letter topic. Unknown fields are ignored so
producers can add fields before consumers know them.

A record can only cost itself: the whole record is refused before decoding when it is larger
than `MAX_RECORD_BYTES`, and every field is bounded by the `MAX_*` constants below, which the
JSON Schemas in `llmrec/schemas/` publish (`maxLength`, `maxItems`, `maxProperties`,
`maximum`). The field bounds cap each field; the record limit caps their sum, so a record cannot
hold every field at its maximum at once. A reason names the field and the rule it broke, never
the record's content.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Any, Literal, Self, TypeVar

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from llmrec.exceptions import InvalidRecordError

__all__ = [
    "EVENT_TYPES",
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTE_CHARS",
    "MAX_CATEGORIES",
    "MAX_CONTEXT_KEYS",
    "MAX_ID_CHARS",
    "MAX_KEY_CHARS",
    "MAX_LABEL_CHARS",
    "MAX_RECORD_BYTES",
    "MAX_TAGS",
    "MAX_TEXT_CHARS",
    "MAX_TITLE_CHARS",
    "MAX_TS",
    "MILLIS_TS",
    "Event",
    "EventType",
    "ForgetUser",
    "ItemRecord",
    "ModelInfo",
    "Recommendation",
    "RecommendedItem",
    "future_skew",
    "parse_event",
    "parse_item",
    "parse_user_record",
    "validation_problems",
]

MAX_RECORD_BYTES = 128 * 1024
"""A whole record as sent, in bytes. Room for one 20,000-character text even when a producer
escapes every character as `\\uXXXX` (6 bytes each), with the ids and the rest beside it."""
MAX_ID_CHARS = 256
MAX_TITLE_CHARS = 1_000
MAX_TEXT_CHARS = 20_000
"""An item description or a review text."""
MAX_CATEGORIES = 64
MAX_TAGS = 256
MAX_LABEL_CHARS = 100
"""One category or tag (at least 1 character)."""
MAX_ATTRIBUTES = 64
MAX_KEY_CHARS = 100
"""A key of `attributes` or `context` (at least 1 character)."""
MAX_ATTRIBUTE_CHARS = 1_000
"""A string value of `attributes`."""
MAX_CONTEXT_KEYS = 32
MAX_TS = 4_102_444_800
"""2100-01-01T00:00:00Z in epoch seconds; a later `ts` is refused. The lower bound is 0:
historic datasets (MovieLens, Amazon) start in the 1990s."""
MILLIS_TS = 100_000_000_000
"""From here up (year 5138 in seconds) a `ts` is refused with a hint: it is milliseconds, or a
finer unit."""
_MAX_PROBLEMS = 10
_FINER_UNITS = (
    (1e17, 1e20, "nanoseconds"),
    (1e14, 1e17, "microseconds"),
    (MILLIS_TS, 1e14, "milliseconds"),
)


def _not_finer_than_seconds(value: object) -> object:
    """Refuse a millisecond (or finer) timestamp with a hint, before the range check."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        for low, high, unit in _FINER_UNITS:
            if low <= value < high:
                raise ValueError(f"ts {value:.15g} looks like {unit}; send seconds since the epoch")
    return value


def _attribute_value(value: object) -> str | int | float | bool:
    """One `attributes` value: a bounded string, a finite number or a boolean (one clear error)."""
    if isinstance(value, str):
        value = value.strip()
        if len(value) > MAX_ATTRIBUTE_CHARS:
            raise ValueError(f"a string value has at most {MAX_ATTRIBUTE_CHARS:,} characters")
        return value
    if isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
        return value
    raise ValueError("a value is a string, a finite number or a boolean")


Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
Label = Annotated[str, Field(min_length=1, max_length=MAX_LABEL_CHARS)]
Key = Annotated[str, Field(min_length=1, max_length=MAX_KEY_CHARS)]
AttributeValue = Annotated[
    str | int | float | bool,
    PlainValidator(_attribute_value),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": MAX_ATTRIBUTE_CHARS},
                {"type": "number"},
                {"type": "boolean"},
            ]
        }
    ),
]
Timestamp = Annotated[
    float,
    Field(
        strict=True,  # a JSON number: no "1e9" strings, no booleans (ints still pass)
        allow_inf_nan=False,
        ge=0,
        le=MAX_TS,
        description="Event time, seconds since the Unix epoch: a JSON number from 0 to "
        f"{MAX_TS} (2100-01-01); from {MILLIS_TS:,} up it is refused as milliseconds.",
    ),
    BeforeValidator(_not_finer_than_seconds),
]


class EventType(StrEnum):
    """What a user did with an item."""

    VIEW = "view"
    CLICK = "click"
    ADD_TO_CART = "add_to_cart"
    PURCHASE = "purchase"
    RATING = "rating"
    REVIEW = "review"
    DISLIKE = "dislike"


EVENT_TYPES = tuple(t.value for t in EventType)


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)


class ItemRecord(_Record):
    """A catalogue upsert on the `items` topic (key = item_id). `deleted` removes the item.

    A record is at most 128 KiB (131,072 bytes) as sent.
    """

    item_id: Id
    title: str = Field(default="", max_length=MAX_TITLE_CHARS)
    description: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    categories: list[Label] = Field(default_factory=list, max_length=MAX_CATEGORIES)
    tags: list[Label] = Field(default_factory=list, max_length=MAX_TAGS)
    attributes: dict[Key, AttributeValue] = Field(
        default_factory=dict,
        max_length=MAX_ATTRIBUTES,
        description=f"At most {MAX_ATTRIBUTES} keys of 1-{MAX_KEY_CHARS} characters; a value is "
        f"a string of at most {MAX_ATTRIBUTE_CHARS:,} characters, a number or a boolean.",
    )
    ts: Timestamp = 0.0
    deleted: bool = False

    @model_validator(mode="after")
    def _title_unless_deleted(self) -> Self:
        if not self.deleted and not self.title:
            raise ValueError("title is required unless deleted is true")
        return self


class Event(_Record):
    """A user interaction on the `events` topic (key = user_id).

    A record is at most 128 KiB (131,072 bytes) as sent.
    """

    event_id: Id
    type: EventType
    user_id: Id
    item_id: Id
    ts: Timestamp
    text: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    rating: float | None = Field(default=None, ge=1, le=5)
    context: dict[Key, Any] | None = Field(
        default=None,
        max_length=MAX_CONTEXT_KEYS,
        description=f"Free-form: at most {MAX_CONTEXT_KEYS} keys of 1-{MAX_KEY_CHARS} characters, "
        f"any JSON values; the whole record stays under {MAX_RECORD_BYTES:,} bytes.",
    )

    @model_validator(mode="after")
    def _type_needs_fields(self) -> Self:
        if self.type is EventType.RATING and self.rating is None:
            raise ValueError("a rating event needs a rating (1-5)")
        if self.type is EventType.REVIEW and not (self.text and self.text.strip()):
            raise ValueError("a review event needs a non-empty text")
        return self


class ForgetUser(_Record):
    """A request to forget a user, on the `events` topic (key = user_id).

    Sent after the user's last event, on the same topic and key, so it is applied after every
    event before it. The worker deletes the user's state (a tombstone on its changelog) and
    publishes a tombstone for the user's key on `recommendations`; a later event starts afresh.
    """

    type: Literal["forget"]
    event_id: Id
    user_id: Id
    ts: Timestamp


class RecommendedItem(BaseModel):
    item_id: str
    score: float
    reasons: list[str]


class ModelInfo(BaseModel):
    encoder: str
    variant: str
    version: str
    ranker: str | None = None
    """Version of the learned ranker that ordered the list; None: the linear fusion did."""


class Recommendation(BaseModel):
    """A list published on the `recommendations` topic (key = user_id)."""

    user_id: str
    items: list[RecommendedItem]
    trigger_event_id: str | None
    covered_event_ids: list[str] = Field(
        default_factory=list,
        description="Every event this list answers, in order; the trigger is the last. A worker "
        "folds a user's events that arrive in one micro-batch into one list.",
    )
    generated_at: float
    model: ModelInfo


T = TypeVar("T", bound=BaseModel)


def _parse(model: type[T], raw: bytes | str | dict[str, Any]) -> T:
    return _validate(model, _load(raw))


def _load(raw: bytes | str | dict[str, Any]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        size = len(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
        if size > MAX_RECORD_BYTES:
            raise InvalidRecordError(f"record is {size:,} bytes; the limit is {MAX_RECORD_BYTES:,}")
    try:
        data = raw if isinstance(raw, dict) else orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecordError(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRecordError(f"expected a JSON object, got {type(data).__name__}")
    return data


def _validate(model: type[T], data: dict[str, Any]) -> T:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # from None: the pydantic error carries the input values; a logged traceback must not.
        raise InvalidRecordError(f"{model.__name__} invalid: {validation_problems(exc)}") from None


def validation_problems(exc: ValidationError) -> str:
    """Where and what, for at most `_MAX_PROBLEMS` errors: never the offending values."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    shown = [f"{_where(e['loc'])}: {e['msg']}" for e in errors[:_MAX_PROBLEMS]]
    if len(errors) > _MAX_PROBLEMS:
        shown.append(f"and {len(errors) - _MAX_PROBLEMS} more")
    return "; ".join(shown)


def _where(loc: tuple[int | str, ...]) -> str:
    """A dotted path; a dict key in it is record text, so it is cut at the length keys may have."""
    parts = [str(p) if len(str(p)) <= MAX_KEY_CHARS else f"{str(p)[:MAX_KEY_CHARS]}…" for p in loc]
    return ".".join(parts) or "<record>"


def parse_event(raw: bytes | str | dict[str, Any]) -> Event:
    """Parse and validate one `events` record, or raise InvalidRecordError."""
    return _parse(Event, raw)


def parse_user_record(raw: bytes | str | dict[str, Any]) -> Event | ForgetUser:
    """Parse one `events` record: an Event, or a ForgetUser (`"type": "forget"`)."""
    data = _load(raw)
    if data.get("type") == "forget":
        return _validate(ForgetUser, data)
    return _validate(Event, data)


def future_skew(ts: float, now: float, max_skew_s: float) -> str | None:
    """Why an event stamped `ts` is refused at `now`: in range for the contract but further
    ahead than `max_skew_s`, it would stay "popular now" as long as it is ahead. Else None."""
    ahead = ts - now
    if ahead > max_skew_s:
        return f"ts is {ahead:,.0f} s in the future (max_future_skew_s={max_skew_s:,.0f})"
    return None


def parse_item(raw: bytes | str | dict[str, Any]) -> ItemRecord:
    """Parse and validate one `items` record, or raise InvalidRecordError."""
    return _parse(ItemRecord, raw)
