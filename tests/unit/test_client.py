"""`llmrec.client` without a broker: the builders keep the contract; the import stays light."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from typing import Any

import orjson
import pytest

from llmrec import client
from llmrec.events import ForgetUser, parse_event, parse_item, parse_user_record
from llmrec.exceptions import InvalidRecordError

HEAVY = ("numpy", "onnxruntime", "hnswlib", "faust", "torch", "lightgbm", "aiokafka")


def test_importing_the_client_loads_nothing_heavy() -> None:
    code = (
        "import sys, llmrec.client\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


@pytest.mark.parametrize(
    ("build", "kind"),
    [
        (client.view, "view"),
        (client.click, "click"),
        (client.add_to_cart, "add_to_cart"),
        (client.purchase, "purchase"),
        (client.dislike, "dislike"),
    ],
)
def test_an_event_builder_stamps_a_fresh_id_and_now(build: client.EventBuilder, kind: str) -> None:
    before = time.time()
    doc = build("u1", "i1")
    after = time.time()
    assert set(doc) == {"event_id", "type", "user_id", "item_id", "ts"}
    assert (doc["type"], doc["user_id"], doc["item_id"]) == (kind, "u1", "i1")
    assert uuid.UUID(doc["event_id"]).version == 4
    assert before <= doc["ts"] <= after
    assert build("u1", "i1")["event_id"] != doc["event_id"]
    assert parse_event(orjson.dumps(doc)).type == kind  # valid as sent, through JSON


def test_given_ids_times_and_context_are_kept() -> None:
    doc = client.purchase("u1", "i1", ts=1_700_000_000, event_id="e-1", context={"page": "home"})
    assert doc == {
        "event_id": "e-1",
        "type": "purchase",
        "user_id": "u1",
        "item_id": "i1",
        "ts": 1_700_000_000,
        "context": {"page": "home"},
    }


def test_rating_and_review_carry_their_fields() -> None:
    assert parse_event(client.rating("u1", "i1", 4.5)).rating == 4.5
    reviewed = client.review("u1", "i1", "Loved it", rating=5)
    assert (reviewed["text"], reviewed["rating"]) == ("Loved it", 5)
    assert "rating" not in client.review("u1", "i1", "Loved it")


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda: client.rating("u1", "i1", 6), "rating"),
        (lambda: client.review("u1", "i1", "   "), "a review event needs a non-empty text"),
        (lambda: client.view("", "i1"), "user_id"),
        (lambda: client.view("u1", "i1", ts=1_700_000_000_000), "looks like milliseconds"),
        (lambda: client.event("teleport", "u1", "i1"), "type"),
        (lambda: client.item("i1", ""), "title is required"),
        (lambda: client.item("i1", "T", categories=["x" * 101]), "categories"),
    ],
)
def test_a_builder_refuses_what_the_contract_refuses(build: Any, reason: str) -> None:
    with pytest.raises(InvalidRecordError, match=reason):
        build()


def test_forget_builds_a_forget_user_record() -> None:
    doc = client.forget("u1")
    assert isinstance(parse_user_record(doc), ForgetUser)
    assert (doc["type"], doc["user_id"]) == ("forget", "u1")
    assert uuid.UUID(doc["event_id"]).version == 4


def test_item_and_delete_item_build_items_records() -> None:
    doc = client.item(
        "i1", "Dune", "Desert planet", categories=("Sci-Fi",), tags=["classic"],
        attributes={"year": 1965}, ts=10,
    )  # fmt: skip
    assert doc == {
        "item_id": "i1",
        "title": "Dune",
        "description": "Desert planet",
        "categories": ["Sci-Fi"],
        "tags": ["classic"],
        "attributes": {"year": 1965},
        "ts": 10,
    }
    assert parse_item(orjson.dumps(doc)).categories == ["Sci-Fi"]
    gone = client.delete_item("i1", ts=11)
    assert gone == {"item_id": "i1", "deleted": True, "ts": 11}
    assert parse_item(gone).deleted


async def test_a_producer_refuses_an_invalid_record_before_it_needs_a_broker() -> None:
    producer = client.Producer("127.0.0.1:1")  # never started: nothing may be sent
    with pytest.raises(InvalidRecordError, match="Event invalid"):
        await producer.send_event({"type": "view", "user_id": "u1"})
    with pytest.raises(InvalidRecordError, match="not JSON-serialisable"):
        await producer.send_event({**client.view("u1", "i1"), "context": {"at": object()}})
    with pytest.raises(InvalidRecordError, match="ItemRecord invalid"):
        await producer.send_item({"item_id": "i1"})
    with pytest.raises(client.ClientError, match="not started"):
        await producer.send_event(client.view("u1", "i1"))


@pytest.mark.parametrize("option", ["acks", "enable_idempotence", "value_serializer"])
def test_the_durability_options_are_not_for_the_caller(option: str) -> None:
    with pytest.raises(client.ClientError, match=f"the client sets {option} itself"):
        client.Producer("127.0.0.1:1", **{option: 1})


def test_recommendations_refuse_an_unknown_start() -> None:
    with pytest.raises(client.ClientError, match="start is 'latest' or 'earliest'"):
        client.Recommendations("127.0.0.1:1", start="middle")  # type: ignore[arg-type]
