"""End to end: a real worker process, the real broker, a small real MovieLens catalogue."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from tests.e2e.conftest import Pipeline
from workers.cli_privacy import send_forget
from workers.kafka_conn import client_kwargs
from workers.topic_admin import read_to_end

NOW = time.time() - 3600

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.model, pytest.mark.slow]


def _event(eid: str, user: str, item: str, kind: str = "purchase", **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"event_id": eid, "type": kind, "user_id": user, "item_id": item}
    doc["ts"] = extra.pop("ts", NOW)
    if kind in ("purchase", "rating"):
        doc["rating"] = 5.0
    return {**doc, **extra}


def _genres(catalogue: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {i["item_id"]: i["categories"] for i in catalogue}


def test_scifi_fan_gets_mostly_scifi_and_nothing_seen(
    pipeline: Pipeline, catalogue: list[dict[str, Any]]
) -> None:
    genres = _genres(catalogue)
    scifi = [i["item_id"] for i in catalogue if "Sci-Fi" in i["categories"]]
    seen = scifi[:12]
    events = [_event(f"sf-{n}", "scifi-fan", item, ts=NOW + n) for n, item in enumerate(seen)]
    pipeline.send_events(events)
    rec = pipeline.recommendation_for(events[-1]["event_id"])
    # Events of one user taken in one micro-batch are answered by one list: its covered ids
    # are a run of what was sent, in order, ending with the trigger.
    sent = [e["event_id"] for e in events]
    covered = rec["covered_event_ids"]
    assert covered == sent[len(sent) - len(covered) :]
    assert rec["trigger_event_id"] == sent[-1]
    ids = [i["item_id"] for i in rec["items"]]
    assert len(ids) == 10
    assert not set(ids) & set(seen), "recommended an item the user already has"
    share = sum("Sci-Fi" in genres[i] for i in ids) / len(ids)
    assert share >= 0.5, f"only {share:.0%} Sci-Fi (catalogue is 37%): {ids}"
    assert all(i["reasons"] for i in rec["items"])
    assert rec["model"]["encoder"]


def test_item_published_after_start_becomes_recommendable(pipeline: Pipeline) -> None:
    item = {
        "item_id": "e2e-new-1",
        "title": "Starship Voyagers: Alien Space Odyssey (2031)",
        "categories": ["Sci-Fi", "Adventure"],
        "description": "A crew of astronauts travels to a distant galaxy to meet aliens.",
        "ts": time.time(),
    }
    published = time.monotonic()
    pipeline.send_items([item])
    # An event on the new item sent at once is parked until the vector arrives, not lost.
    ev = _event("new-1-view", "early-bird", "e2e-new-1", "view")
    pipeline.send_events([ev])
    rec = pipeline.recommendation_for("new-1-view", timeout=120)
    assert "e2e-new-1" not in [i["item_id"] for i in rec["items"]]
    status, doc = pipeline.get("/items/e2e-new-1/similar?k=5")
    assert status == 200
    assert len(doc["similar"]) == 5
    assert time.monotonic() - published < 10, "new item took too long to become searchable"
    # ... and it is a candidate for a Sci-Fi fan, once the view's statistics update has gone
    # through the item's owner and back (`item-updates` -> `item-stats` -> replica).
    deadline = time.monotonic() + 30
    while True:
        status, doc = pipeline.get("/users/scifi-fan/recommendations?k=50")
        assert status == 200
        assert doc["known_user"]
        if "e2e-new-1" in [i["item_id"] for i in doc["items"]]:
            break
        assert time.monotonic() < deadline, f"new item never recommended: {doc['items'][:5]}"
        time.sleep(0.2)


def test_review_text_changes_next_recommendations(
    pipeline: Pipeline, catalogue: list[dict[str, Any]]
) -> None:
    other = [i["item_id"] for i in catalogue if "Sci-Fi" not in i["categories"]]
    history = other[:5]
    reviewed = other[5]
    for user in ("reviewer-pos", "reviewer-neg"):
        pipeline.send_events(
            [_event(f"{user}-{n}", user, item, ts=NOW + n) for n, item in enumerate(history)]
        )
    texts = {
        "reviewer-pos": "Absolutely wonderful, I loved every minute, a brilliant and moving film.",
        "reviewer-neg": "Terrible and boring, I hated it, a complete waste of time.",
    }
    recs = {}
    for user, text in texts.items():
        ev = _event(f"{user}-review", user, reviewed, "review", text=text, ts=NOW + 100)
        pipeline.send_events([ev])
        recs[user] = [i["item_id"] for i in pipeline.recommendation_for(ev["event_id"])["items"]]
    assert recs["reviewer-pos"] != recs["reviewer-neg"], "review text had no effect"


def test_malformed_event_goes_to_dlq_and_stream_continues(pipeline: Pipeline) -> None:
    bad = b'{"event_id": "bad-1", "type": "teleport", "user_id": "u-bad", "item_id": "1"}'
    pipeline.send("events", [(b"u-bad", bad), (b"u-bad", b"\xff\xfe not json")])
    good = _event("after-bad", "u-bad", "1", "view")
    pipeline.send_events([good])
    dead = pipeline.wait_for("events_dlq", lambda d: "bad-1" in (d.get("value") or ""))
    assert dead["kind"] == "invalid"
    assert "type" in dead["error"]
    assert dead["source"]["topic"] == pipeline.topics["events"]
    assert orjson.loads(dead["value"])["event_id"] == "bad-1"
    binary = pipeline.wait_for("events_dlq", lambda d: d.get("value_encoding") == "base64")
    assert "JSON" in binary["error"]
    assert pipeline.recommendation_for("after-bad")["user_id"] == "u-bad"


def test_unkeyed_events_are_repartitioned_by_user(pipeline: Pipeline) -> None:
    evs = [_event(f"unkeyed-{n}", "u-unkeyed", str(n + 1), "view") for n in range(3)]
    pipeline.send("events", [(None, orjson.dumps(e)) for e in evs])
    # Unkeyed events land on any partition, so their relative order is lost; all three reach
    # the one owner of the user's state, which then excludes all three items.
    for e in evs:
        assert pipeline.recommendation_for(e["event_id"])["user_id"] == "u-unkeyed"
    status, doc = pipeline.get("/users/u-unkeyed/recommendations?k=20")
    assert status == 200
    assert doc["known_user"]
    assert not {"1", "2", "3"} & {i["item_id"] for i in doc["items"]}


def test_restarted_worker_keeps_user_state(
    pipeline: Pipeline, catalogue: list[dict[str, Any]]
) -> None:
    scifi = [i["item_id"] for i in catalogue if "Sci-Fi" in i["categories"]]
    seen = scifi[20:30]
    pipeline.send_events(
        [_event(f"rs-{n}", "restart-user", item, ts=NOW + n) for n, item in enumerate(seen)]
    )
    pipeline.recommendation_for(f"rs-{len(seen) - 1}")
    pipeline.stop()
    pipeline.start()
    assert "loaded index snapshot" in pipeline.log_tail(200_000)
    ev = _event("rs-after", "restart-user", scifi[30], "view", ts=NOW + 100)
    pipeline.send_events([ev])
    rec = pipeline.recommendation_for("rs-after")
    ids = {i["item_id"] for i in rec["items"]}
    assert not ids & set(seen), "state lost on restart: seen items recommended again"
    status, doc = pipeline.get("/users/restart-user/recommendations")
    assert status == 200
    assert doc["known_user"]


def test_a_burst_of_many_users_is_answered_once_per_event(
    pipeline: Pipeline, catalogue: list[dict[str, Any]]
) -> None:
    items = [i["item_id"] for i in catalogue]
    users = [f"burst-{n}" for n in range(7)]
    events = [
        _event(
            f"burst-{n}", users[n % len(users)], items[(n * 13) % len(items)], "view", ts=NOW + n
        )
        for n in range(600)
    ]
    pipeline.send_events(events)
    wanted = {e["event_id"] for e in events}
    answered: dict[str, int] = {}

    def all_answered(doc: dict[str, Any]) -> bool:
        for event_id in doc["covered_event_ids"]:
            if event_id in wanted:
                answered[event_id] = answered.get(event_id, 0) + 1
        return answered.keys() == wanted

    pipeline.wait_for("recommendations", all_answered, timeout=180)
    # Micro-batches fold a user's events into one list, but no event is lost or answered twice.
    assert set(answered.values()) == {1}


def _tiny_ranker(seed: int) -> Any:
    """A real LightGBM ranker (taught that "popular" marks the engaged row) for plumbing tests."""
    import numpy as np

    from llmrec.ranker.features import FEATURES
    from llmrec.ranker.train import FitConfig, Group, fit_ranker

    rng = np.random.default_rng(seed)

    def groups(n: int) -> list[Group]:
        out = []
        for _ in range(n):
            x = rng.random((20, len(FEATURES))).astype(np.float32)
            y = (np.arange(20) == np.argmax(x[:, FEATURES.index("popular")])).astype(np.int8)
            out.append(Group(x, y, 0.0))
        return out

    fit = FitConfig(grid=({"num_leaves": 7, "min_data_in_leaf": 5},), max_rounds=20)
    return fit_ranker(groups(60), groups(20), fit=fit)


def test_worker_picks_up_a_published_ranker_without_restart(pipeline: Pipeline) -> None:
    from llmrec.ranker.store import publish

    for n, ranker in enumerate((_tiny_ranker(0), _tiny_ranker(1))):
        publish(ranker, pipeline.ranker_dir)
        deadline = time.monotonic() + 20
        while f"ranker {ranker.version} in use" not in pipeline.log_tail(20_000):
            assert time.monotonic() < deadline, pipeline.log_tail()
            time.sleep(0.2)
        eid = f"ranked-{n}"
        pipeline.send_events([_event(eid, f"u-ranked-{n}", "1", "view")])
        rec = pipeline.recommendation_for(eid)
        assert rec["model"]["ranker"] == ranker.version
        assert rec["items"]
        assert all(item["reasons"] for item in rec["items"])


def test_forgotten_user_leaves_no_state_and_no_list(
    pipeline: Pipeline, catalogue: list[dict[str, Any]]
) -> None:
    user = "forget-me"
    items = [i["item_id"] for i in catalogue[200:206]]
    events = [_event(f"fg-{n}", user, item, ts=NOW + n) for n, item in enumerate(items[:4])]
    pipeline.send_events(events)
    pipeline.recommendation_for("fg-3")
    assert pipeline.get(f"/users/{user}/recommendations")[1]["known_user"]

    asyncio.run(send_forget(pipeline.settings, [user]))
    tombstones = asyncio.run(_records_of(pipeline, pipeline.topics["recommendations"], user))
    deadline = time.monotonic() + 60
    while not tombstones or tombstones[-1] is not None:
        assert time.monotonic() < deadline, f"no tombstone: {tombstones[-3:]} {pipeline.log_tail()}"
        time.sleep(0.5)
        tombstones = asyncio.run(_records_of(pipeline, pipeline.topics["recommendations"], user))
    assert not pipeline.get(f"/users/{user}/recommendations")[1]["known_user"]
    changelog = f"{pipeline.worker.env['LLMREC_APP_ID']}-user-state-changelog"
    states = asyncio.run(_records_of(pipeline, changelog, user))
    assert len(states) >= 2, "the state was written before the forget"
    assert all(states[:-1])
    assert states[-1] is None, "the changelog's last word on the user is not a tombstone"

    # A later event starts afresh: its list covers it alone, on a new state.
    pipeline.send_events([_event("fg-after", user, items[5], ts=NOW + 10)])
    assert pipeline.recommendation_for("fg-after")["covered_event_ids"] == ["fg-after"]
    assert pipeline.get(f"/users/{user}/recommendations")[1]["known_user"]


async def _records_of(p: Pipeline, topic: str, key: str) -> list[bytes | None]:
    return [
        r.value
        async for r in read_to_end(client_kwargs(p.settings), topic)
        if r.key == key.encode()
    ]
