"""The benchmark's interleaved traffic: many users round-robin, each user's order kept."""

from __future__ import annotations

from llmrec.data import interleave_users


def test_users_take_turns_and_keep_their_own_order() -> None:
    events = [
        {"event_id": f"{u}{k}", "user_id": u, "ts": float(t)}
        for t, (u, k) in enumerate([("a", 0), ("a", 1), ("a", 2), ("b", 0), ("c", 0), ("c", 1)])
    ]
    out = interleave_users(events)
    assert [e["event_id"] for e in out] == ["a0", "b0", "c0", "a1", "c1", "a2"]
    ts = [e["ts"] for e in out]
    assert ts == sorted(ts)
    assert ts[0] == 0.0
    assert ts[-1] < 5.0  # re-stamped evenly over the original span
    assert interleave_users([]) == []


def test_a_cap_per_user_keeps_each_users_first_events() -> None:
    events = [{"event_id": f"{u}{k}", "user_id": u, "ts": float(k)} for u in "ab" for k in range(4)]
    out = interleave_users(events, max_per_user=2)
    assert [e["event_id"] for e in out] == ["a0", "b0", "a1", "b1"]
