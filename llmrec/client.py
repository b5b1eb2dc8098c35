"""A small typed client for llmrec's topics: event builders, a producer, a recommendations reader.

The builders return contract records (plain dicts, checked against `llmrec.events`); `Producer`
sends them, keyed as the workers expect; `Recommendations` reads the published lists. Importing
this module costs only pydantic and orjson: aiokafka is imported when a `Producer` or
`Recommendations` starts, so the builders work where Kafka's client is not installed.

    async with Producer("broker:9092") as producer:
        await producer.send_item(item("i1", "Dune", categories=["Sci-Fi"]))
        await producer.send_event(view("u1", "i1"))
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Collection, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol, Self

import orjson
from pydantic import ValidationError

from llmrec.events import (
    EventType,
    Recommendation,
    parse_event,
    parse_item,
    parse_user_record,
    validation_problems,
)
from llmrec.exceptions import InvalidRecordError, LlmrecError

__all__ = [
    "ClientError",
    "EventBuilder",
    "Forgotten",
    "Producer",
    "Recommendations",
    "add_to_cart",
    "click",
    "delete_item",
    "dislike",
    "event",
    "forget",
    "item",
    "purchase",
    "rating",
    "review",
    "view",
]

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "llmrec."
_RESERVED = (
    "bootstrap_servers",
    "acks",
    "enable_idempotence",
    "key_serializer",
    "value_serializer",
)


class ClientError(LlmrecError):
    """The client is used wrongly: not started, aiokafka missing, an option it sets itself."""


# -- builders -------------------------------------------------------------------------------------


def _stamp(ts: float | None, event_id: str | None) -> tuple[float, str]:
    return (time.time() if ts is None else ts), (event_id or str(uuid.uuid4()))


def event(
    kind: EventType | str,
    user_id: str,
    item_id: str,
    *,
    ts: float | None = None,
    event_id: str | None = None,
    text: str | None = None,
    rating: float | None = None,
    context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One `events` record of type `kind`; `ts` defaults to now, `event_id` to a fresh uuid4.

    Raises InvalidRecordError when it breaks the contract (e.g. a rating outside 1-5).
    """
    ts, event_id = _stamp(ts, event_id)
    doc: dict[str, Any] = {
        "event_id": event_id,
        "type": str(kind),
        "user_id": user_id,
        "item_id": item_id,
        "ts": ts,
    }
    optional = {"text": text, "rating": rating, "context": dict(context) if context else None}
    doc.update({k: v for k, v in optional.items() if v is not None})
    parse_event(doc)
    return doc


class EventBuilder(Protocol):
    """The shape of `view`, `click`, `add_to_cart`, `purchase` and `dislike`."""

    def __call__(
        self,
        user_id: str,
        item_id: str,
        *,
        ts: float | None = None,
        event_id: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]: ...


def _builder(kind: EventType, doc: str) -> EventBuilder:
    def build(
        user_id: str,
        item_id: str,
        *,
        ts: float | None = None,
        event_id: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        return event(kind, user_id, item_id, ts=ts, event_id=event_id, context=context)

    build.__name__ = build.__qualname__ = kind.value
    build.__doc__ = doc
    return build


view = _builder(EventType.VIEW, "The user looked at the item.")
click = _builder(EventType.CLICK, "The user clicked the item.")
add_to_cart = _builder(EventType.ADD_TO_CART, "The user put the item in a cart.")
purchase = _builder(EventType.PURCHASE, "The user bought the item.")
dislike = _builder(EventType.DISLIKE, "The user said the item is not for them.")


def rating(
    user_id: str,
    item_id: str,
    rating: float,
    *,
    ts: float | None = None,
    event_id: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The user rated the item, 1 to 5."""
    return event(
        EventType.RATING,
        user_id,
        item_id,
        ts=ts,
        event_id=event_id,
        rating=rating,
        context=context,
    )


def review(
    user_id: str,
    item_id: str,
    text: str,
    rating: float | None = None,
    *,
    ts: float | None = None,
    event_id: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The user reviewed the item: a non-empty text, and a rating (1-5) if given."""
    return event(
        EventType.REVIEW,
        user_id,
        item_id,
        ts=ts,
        event_id=event_id,
        text=text,
        rating=rating,
        context=context,
    )


def forget(user_id: str, *, ts: float | None = None, event_id: str | None = None) -> dict[str, Any]:
    """A request to forget the user (`ForgetUser`): send it after the user's last event."""
    ts, event_id = _stamp(ts, event_id)
    doc = {"type": "forget", "event_id": event_id, "user_id": user_id, "ts": ts}
    parse_user_record(doc)
    return doc


def item(
    item_id: str,
    title: str,
    description: str | None = None,
    categories: Iterable[str] = (),
    tags: Iterable[str] = (),
    *,
    attributes: Mapping[str, str | int | float | bool] | None = None,
    ts: float | None = None,
) -> dict[str, Any]:
    """One `items` record (an upsert: a later record of the same item replaces it)."""
    doc: dict[str, Any] = {
        "item_id": item_id,
        "title": title,
        "categories": list(categories),
        "tags": list(tags),
        "ts": time.time() if ts is None else ts,
    }
    if description is not None:
        doc["description"] = description
    if attributes:
        doc["attributes"] = dict(attributes)
    parse_item(doc)
    return doc


def delete_item(item_id: str, *, ts: float | None = None) -> dict[str, Any]:
    """An `items` record that removes the item (`"deleted": true`)."""
    doc = {"item_id": item_id, "deleted": True, "ts": time.time() if ts is None else ts}
    parse_item(doc)
    return doc


def _dumps(doc: Mapping[str, Any]) -> bytes:
    try:
        return orjson.dumps(doc)
    except TypeError as exc:  # orjson.JSONEncodeError
        raise InvalidRecordError(f"not JSON-serialisable: {exc}") from None


# -- producer -------------------------------------------------------------------------------------


def _kafka_options(options: Mapping[str, Any]) -> dict[str, Any]:
    taken = sorted(set(options) & set(_RESERVED))
    if taken:
        raise ClientError(f"the client sets {', '.join(taken)} itself")
    return dict(options)


def _aiokafka() -> Any:
    try:
        import aiokafka
    except ImportError as exc:  # pragma: no cover - aiokafka is a dependency of the workers
        raise ClientError("the Kafka client needs aiokafka: pip install aiokafka") from exc
    return aiokafka


class _KafkaClient:
    """One aiokafka client (`_new_client`), started by `start` or `async with`; `stop` closes
    it (a producer sends what it buffered first)."""

    _client: Any = None

    def _new_client(self) -> Any:
        raise NotImplementedError

    async def start(self) -> None:
        if self._client is None:
            client = self._new_client()
            await client.start()
            self._client = client

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class Producer(_KafkaClient):
    """Sends contract records to `<topic_prefix>events` and `<topic_prefix>items`.

    Every record is validated first (InvalidRecordError, nothing sent) and keyed as the workers
    expect: events by user_id, items by item_id. Sends wait for every in-sync replica
    (acks=all) and are idempotent. `kafka_options` go to aiokafka's producer as they are, e.g.
    security_protocol, ssl_context, sasl_mechanism, sasl_plain_username, sasl_plain_password.
    """

    def __init__(
        self,
        bootstrap_servers: str | list[str],
        *,
        topic_prefix: str = DEFAULT_PREFIX,
        **kafka_options: Any,
    ) -> None:
        self.events_topic = f"{topic_prefix}events"
        self.items_topic = f"{topic_prefix}items"
        self._config = {
            **_kafka_options(kafka_options),
            "bootstrap_servers": bootstrap_servers,
            "acks": "all",
            "enable_idempotence": True,
        }

    def _new_client(self) -> Any:
        return _aiokafka().AIOKafkaProducer(**self._config)

    async def send_event(self, doc: Mapping[str, Any]) -> None:
        """Send one `events` record (an Event or a ForgetUser), keyed by its user_id; returns
        once the broker has it."""
        raw = _dumps(doc)
        record = parse_user_record(raw)
        await self._send(self.events_topic, record.user_id, raw)

    async def send_item(self, doc: Mapping[str, Any]) -> None:
        """Send one `items` record, keyed by its item_id; returns once the broker has it."""
        raw = _dumps(doc)
        record = parse_item(raw)
        await self._send(self.items_topic, record.item_id, raw)

    async def flush(self) -> None:
        if self._client is not None:
            await self._client.flush()

    async def _send(self, topic: str, key: str, raw: bytes) -> None:
        if self._client is None:
            raise ClientError("the producer is not started: use `async with Producer(...)`")
        await self._client.send_and_wait(topic, raw, key=key.encode("utf-8"))


# -- recommendations reader -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Forgotten:
    """A tombstone on `recommendations`: the user was forgotten; drop any list kept for them."""

    user_id: str


class Recommendations(_KafkaClient):
    """The lists published on `<topic_prefix>recommendations`, as `Recommendation` objects.

    Reads every partition without a consumer group (nothing is committed), from the newest
    record (`start="latest"`) or the oldest (`"earliest"`); `users` keeps only those users.
    A tombstone (a forgotten user) is yielded as `Forgotten`, never skipped: a copy of the lists
    kept elsewhere must drop that user's too. A record that is not a valid list is logged with
    its partition and offset, counted in `skipped`, and passed over.
    """

    def __init__(
        self,
        bootstrap_servers: str | list[str],
        *,
        topic_prefix: str = DEFAULT_PREFIX,
        start: Literal["latest", "earliest"] = "latest",
        users: Collection[str] | None = None,
        **kafka_options: Any,
    ) -> None:
        if start not in ("latest", "earliest"):
            raise ClientError(f"start is 'latest' or 'earliest', not {start!r}")
        self.topic = f"{topic_prefix}recommendations"
        self.users = frozenset(users) if users is not None else None
        self.skipped = 0
        self._config = {
            **_kafka_options(kafka_options),
            "bootstrap_servers": bootstrap_servers,
            "group_id": None,
            "enable_auto_commit": False,
            "auto_offset_reset": start,
        }

    def _new_client(self) -> Any:
        return _aiokafka().AIOKafkaConsumer(self.topic, **self._config)

    def __aiter__(self) -> AsyncIterator[Recommendation | Forgotten]:
        return self._records()

    async def _records(self) -> AsyncIterator[Recommendation | Forgotten]:
        if self._client is None:
            raise ClientError("not started: use `async with Recommendations(...)`")
        async for msg in self._client:
            out = self._decode(msg)
            if out is not None and (self.users is None or out.user_id in self.users):
                yield out

    def _decode(self, msg: Any) -> Recommendation | Forgotten | None:
        key = msg.key.decode("utf-8", "replace") if msg.key is not None else ""
        if msg.value is None:
            return Forgotten(key)
        try:
            return Recommendation.model_validate_json(msg.value)
        except ValidationError as exc:
            self.skipped += 1
            problems = validation_problems(exc)
            log.warning(
                "skipped a record that is not a recommendation list at %s[%d]@%d: %s",
                msg.topic,
                msg.partition,
                msg.offset,
                problems,
            )
            return None
