"""`llmrec bench engine`: the worker's way of answering, replayed in process, and its hash."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from llmrec.engine import Engine, EngineConfig
from llmrec.events import Event, parse_event
from tests.unit.fakes_recsys import HashingEncoder, build_index
from workers.bench_engine import bench_engine, replay_batches

ITEMS = {f"i{n}": f"{'cooking food' if n % 2 else 'space robot'} item {n}" for n in range(40)}


def _stream(users: int, per_user: int, seed: int) -> list[Event]:
    """Each user's events in order, users round-robin (consecutive events: other users)."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(sorted(ITEMS), size=(users, per_user))
    return [
        parse_event(
            {
                "event_id": f"e{u}-{n}",
                "type": "purchase",
                "user_id": f"u{u}",
                "item_id": str(picks[u, n]),
                "ts": 1e6 + n * users + u,
            }
        )
        for n in range(per_user)
        for u in range(users)
    ]


def _engine_and_states() -> tuple[Engine, dict[str, bytes], list[Event]]:
    enc = HashingEncoder(32)
    engine = Engine(EngineConfig(), build_index(enc, ITEMS), enc)
    stream = _stream(12, 6, 0)
    states: dict[str, bytes] = {}
    engine.replay(stream[:48], states)
    return engine, states, stream[48:]


def test_batch_sizes_answer_the_same_lists_when_no_user_repeats_in_a_batch() -> None:
    engine, states, events = _engine_and_states()
    before = dict(states)
    one = replay_batches(engine, states, events, 1, 5)
    again = replay_batches(engine, states, events, 1, 5)
    twelve = replay_batches(engine, states, events, 12, 5)  # 12 users: a batch is each once
    assert states == before  # every run starts from the same states
    assert one["sha256"] == again["sha256"] == twelve["sha256"]
    assert one["lists"] == twelve["lists"] == len(events)
    assert one["candidates"] > 0
    assert set(one["seconds"]) == {"fold", "retrieve", "rank", "rerank"}


def test_a_users_events_sharing_a_batch_get_one_list_and_another_hash() -> None:
    engine, states, events = _engine_and_states()
    one = replay_batches(engine, states, events, 1, 5)
    all_at_once = replay_batches(engine, states, events, len(events), 5)
    assert all_at_once["lists"] == 12  # one per user
    assert all_at_once["sha256"] != one["sha256"]


def test_the_command_writes_figures_per_catalogue_and_batch(tmp_path: Path) -> None:
    out = tmp_path / "engine.json"
    bench_engine(
        items="150", events=120, warm=300, batches="1,8", candidate_scale="1", ranker="none",
        encoder="hashing", out=out,
    )  # fmt: skip
    doc = json.loads(out.read_text())
    (catalogue,) = doc["catalogues"]
    assert catalogue["items"] == 150
    runs = catalogue["runs"]
    assert [r["batch_events"] for r in runs] == [1, 8]
    for r in runs:
        assert r["events"] == 120
        assert 0 < r["lists_per_event"] <= 1
        assert r["total_ms_per_event"] > 0
        assert len(r["sha256"]) == 64


def test_smaller_candidate_budgets_are_timed_beside_the_defaults(tmp_path: Path) -> None:
    out = tmp_path / "engine.json"
    bench_engine(
        items="150", events=60, warm=300, batches="8", candidate_scale="1,0.1",
        ranker="none", encoder="hashing", out=out,
    )  # fmt: skip
    (catalogue,) = json.loads(out.read_text())["catalogues"]
    full, tenth = catalogue["runs"]
    assert (full["candidate_scale"], tenth["candidate_scale"]) == (1.0, 0.1)
    assert tenth["candidates_per_list"] < full["candidates_per_list"]
    assert tenth["sha256"] != full["sha256"]
