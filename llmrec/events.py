"""The event contract: item upserts, user interactions and published recommendations.

Every record that enters llmrec is parsed here; a record that breaks the contract raises
`InvalidRecordError` with a reason fit for the dead-letter topic. Unknown fields are ignored so
producers can add fields before consumers know them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Self, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmrec.exceptions import InvalidRecordError

__all__ = [
    "EVENT_TYPES",
    "Event",
    "EventType",
    "ItemRecord",
    "ModelInfo",
    "Recommendation",
    "RecommendedItem",
    "parse_event",
    "parse_item",
]

Id = Annotated[str, Field(min_length=1, max_length=256)]
Timestamp = Annotated[float, Field(ge=0, description="Event time, seconds since the Unix epoch.")]
MAX_TEXT_CHARS = 20_000


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
    """A catalogue upsert on the `items` topic (key = item_id). `deleted` removes the item."""

    item_id: Id
    title: str = Field(default="", max_length=1_000)
    description: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    categories: list[str] = Field(default_factory=list, max_length=64)
    tags: list[str] = Field(default_factory=list, max_length=256)
    attributes: dict[str, str | int | float | bool] = Field(default_factory=dict)
    ts: Timestamp = 0.0
    deleted: bool = False

    @model_validator(mode="after")
    def _title_unless_deleted(self) -> Self:
        if not self.deleted and not self.title:
            raise ValueError("title is required unless deleted is true")
        return self


class Event(_Record):
    """A user interaction on the `events` topic (key = user_id)."""

    event_id: Id
    type: EventType
    user_id: Id
    item_id: Id
    ts: Timestamp
    text: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    rating: float | None = Field(default=None, ge=1, le=5)
    context: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _type_needs_fields(self) -> Self:
        if self.type is EventType.RATING and self.rating is None:
            raise ValueError("a rating event needs a rating (1-5)")
        if self.type is EventType.REVIEW and not (self.text and self.text.strip()):
            raise ValueError("a review event needs a non-empty text")
        return self


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
    try:
        data = raw if isinstance(raw, dict) else orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecordError(f"not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidRecordError(f"expected a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<record>'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidRecordError(f"{model.__name__} invalid: {problems}") from exc


def parse_event(raw: bytes | str | dict[str, Any]) -> Event:
    """Parse and validate one `events` record, or raise InvalidRecordError."""
    return _parse(Event, raw)


def parse_item(raw: bytes | str | dict[str, Any]) -> ItemRecord:
    """Parse and validate one `items` record, or raise InvalidRecordError."""
    return _parse(ItemRecord, raw)
