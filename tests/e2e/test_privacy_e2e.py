"""With LLMREC_USER_ID_KEY the worker keeps and publishes pseudonyms only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from llmrec.privacy import pseudonymise
from tests.e2e.conftest import Pipeline
from tests.e2e.helpers import HASHING, chaos_catalogue, start_indexed
from workers.cli_privacy import send_forget
from workers.kafka_conn import client_kwargs
from workers.topic_admin import read_to_end

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.slow]

KEY = "a-secret-key-of-at-least-32-chars!"


async def _keys(p: Pipeline, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    return [(r.key, r.value) async for r in read_to_end(client_kwargs(p.settings), topic)]


def test_raw_user_ids_never_reach_state_or_lists(make_pipeline: Callable[..., Pipeline]) -> None:
    p = make_pipeline({**HASHING, "LLMREC_USER_ID_KEY": KEY})
    catalogue = chaos_catalogue(40)
    start_indexed(p, catalogue)
    user = "alice@example.com"
    alias = pseudonymise(user, KEY.encode())
    now = time.time() - 60
    events = [
        {"event_id": f"pv-{n}", "type": "view", "user_id": user, "item_id": f"c{n}", "ts": now + n}
        for n in range(3)
    ]
    p.send_events(events)
    rec = p.recommendation_for("pv-2")
    assert rec["user_id"] == alias

    changelog = f"{p.worker.env['LLMREC_APP_ID']}-user-state-changelog"
    published = asyncio.run(_keys(p, p.topics["recommendations"]))
    states = asyncio.run(_keys(p, changelog))
    assert {k for k, _ in published} == {alias.encode()}
    assert {k for k, _ in states} == {alias.encode()}
    assert not any(user.encode() in (v or b"") for _, v in published + states)

    assert p.get(f"/users/{user}/recommendations")[1]["known_user"]  # asked by its raw id

    # Forgetting the raw id forgets its pseudonym's state.
    asyncio.run(send_forget(p.settings, [user]))
    deadline = time.monotonic() + 60
    while asyncio.run(_keys(p, changelog))[-1] != (alias.encode(), None):
        assert time.monotonic() < deadline, p.log_tail()
        time.sleep(0.5)
    assert not p.get(f"/users/{user}/recommendations")[1]["known_user"]
