"""A flood of malformed records with valid events interleaved: each bad record costs itself."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from llmrec.shared_stats import StatsUpdate
from tests.e2e.conftest import Pipeline
from tests.e2e.helpers import HASHING, chaos_catalogue, collect, metric, start_indexed

pytestmark = [pytest.mark.chaos, pytest.mark.kafka, pytest.mark.slow]

NOW = time.time() - 3600
MB = 1_000_000


def _valid(n: int, items: list[str]) -> list[dict[str, Any]]:
    rng = random.Random(7)
    return [
        {
            "event_id": f"ok-{k}",
            "type": rng.choice(["view", "purchase", "add_to_cart"]),
            "user_id": f"u{rng.randrange(100)}",
            "item_id": rng.choice(items),
            "ts": NOW + k,
        }
        for k in range(n)
    ]


def _bad_events(n: int) -> list[bytes]:
    """Records that break the contract in every way we know of, cycled to `n`."""
    ok = {"event_id": "x", "type": "view", "user_id": "u1", "item_id": "c1", "ts": NOW}

    def doc(**change: Any) -> bytes:
        return orjson.dumps({k: v for k, v in {**ok, **change}.items() if v is not ...})

    kinds: list[Callable[[int], bytes]] = [
        lambda k: b"not json {" + str(k).encode(),
        lambda k: b"\xff\xfe\x00\x81 not utf-8 " + str(k).encode(),
        lambda k: b'{"event_id": "\xff\xfe", "type": "view"}',
        lambda k: b"[1, 2, 3]",
        lambda k: b"",
        lambda k: doc(event_id=f"bad-{k}", type="teleport"),
        lambda k: doc(event_id=f"bad-{k}", user_id=...),
        lambda k: b'{"event_id":"b","type":"view","user_id":"u","item_id":"c1","ts":"inf"}',
        lambda k: doc(event_id=f"bad-{k}", ts=True),
        lambda k: doc(event_id=f"bad-{k}", ts=1.7e12),  # milliseconds
        lambda k: doc(event_id=f"bad-{k}", ts=-5),
        lambda k: doc(event_id=f"bad-{k}", ts=time.time() + 30 * 86_400),  # a month ahead
        lambda k: doc(event_id=f"bad-{k}", type="rating", rating=9),
        lambda k: doc(event_id=f"bad-{k}", type="review", text="   "),
        lambda k: doc(event_id="e" * 300),
        lambda k: doc(event_id=f"bad-{k}", type="review", text="long review " * 2_500),
    ]
    out = [kinds[k % len(kinds)](k) for k in range(n - 4)]
    # Four records of about 1 MB: their dead-letter copies would not fit a produce request.
    out += [doc(event_id=f"huge-{k}", type="review", text="x" * (MB - 200)) for k in range(3)]
    out.append(b"\xff" * (MB - 100))
    return out


def _bad_items(n: int) -> list[bytes]:
    kinds: list[Callable[[int], bytes]] = [
        lambda k: b"{broken",
        lambda k: b"\xc3\x28 invalid utf-8",
        lambda k: orjson.dumps({"item_id": f"bi{k}"}),  # no title
        lambda k: orjson.dumps({"item_id": f"bi{k}", "title": "t", "categories": ["c"] * 65}),
        # The record that once overflowed the item-vector header: 64 categories of 1,100 chars.
        lambda k: orjson.dumps(
            {"item_id": f"bi{k}", "title": "t", "categories": ["c" * 1100] * 64}
        ),
        lambda k: orjson.dumps({"item_id": f"bi{k}", "title": "t" * 2_000}),
        lambda k: orjson.dumps({"item_id": "", "title": "t"}),
        lambda k: b'{"item_id": "bi", "title": "t", "ts": "inf"}',
    ]
    return [kinds[k % len(kinds)](k) for k in range(n)]


def test_flood_of_malformed_records_costs_only_themselves(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(HASHING)
    catalogue = chaos_catalogue()
    start_indexed(p, catalogue)

    valid = _valid(1_000, [i["item_id"] for i in catalogue])
    bad = _bad_events(10_000)
    records: list[tuple[bytes | None, bytes | None]] = [
        (b"u1" if k % 2 else None, raw) for k, raw in enumerate(bad)
    ]
    records += [(e["user_id"].encode(), orjson.dumps(e)) for e in valid]
    random.Random(3).shuffle(records)
    bad_items = _bad_items(1_000)
    # Internal records a foreign producer or a bug could write: statistics updates that are not
    # one, or that are keyed by another item than theirs.
    misfiled = StatsUpdate("c3", NOW, 1.0, True).to_bytes()
    bad_updates = [(b"c1", b"junk %d" % k) if k % 2 else (b"c2", misfiled) for k in range(50)]
    started = time.monotonic()
    p.send("items", [(f"bi{k}".encode(), raw) for k, raw in enumerate(bad_items)])
    p.send("item_updates", bad_updates)
    p.send("events", records)

    want = {e["event_id"] for e in valid}

    def answered(recs: list[dict[str, Any]]) -> bool:
        return want <= {i for r in recs for i in r["covered_event_ids"]}

    recs = collect(p, "recommendations", answered, timeout=300)
    covered = {i for r in recs for i in r["covered_event_ids"]}
    missing = want - covered
    assert not missing, f"{len(missing)} valid events never answered, e.g. {sorted(missing)[:5]}"

    bad_total = len(bad) + len(bad_updates)
    dead = collect(p, "events_dlq", lambda d: len(d) >= bad_total, timeout=120)
    dead_items = collect(p, "items_dlq", lambda d: len(d) >= len(bad_items), timeout=120)
    elapsed = time.monotonic() - started
    kinds = Counter(d["kind"] for d in dead)
    print(
        f"\nflood: {len(valid)} valid answered, {len(dead)} of {len(bad)} malformed events and "
        f"{len(dead_items)} of {len(bad_items)} malformed items dead-lettered in {elapsed:.1f} s "
        f"({dict(kinds)})"
    )
    assert len(dead) == bad_total, "a malformed record is missing from (or doubled in) the DLQ"
    from_updates = [d for d in dead if d["source"]["topic"] == p.topics["item_updates"]]
    assert len(from_updates) == len(bad_updates)
    assert len(dead_items) == len(bad_items)
    assert all(d["error"] for d in dead + dead_items), "a dead letter without a reason"
    assert not any(d["source"]["offset"] is None for d in dead)
    assert not {d.get("value") for d in dead} & {orjson.dumps(e).decode() for e in valid}
    huge = [d for d in dead if d.get("value_truncated")]
    assert len(huge) == 4, "the 1 MB records' dead letters should carry a digest, not the bytes"
    assert all(d["value_size"] >= MB - 200 and len(d["value_sha256"]) == 64 for d in huge)

    log = p.worker.log_path.read_text(errors="replace")
    assert "Crashed" not in log, "an agent crashed"
    assert p.worker.proc is not None
    assert p.worker.proc.poll() is None, "the worker died"
    assert metric(p, "llmrec_loop_restarts_total") == 0
    assert "long review long review" not in log, "review text reached the log"
