"""A worker with LLMREC_WEB_TOKEN (/health exempted) and LLMREC_WEB_ADVERTISED_URL, fed through
`llmrec.client`: the views answer 401 without the token and the lists with it."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from llmrec import client
from llmrec.events import Recommendation
from tests.e2e.conftest import Pipeline
from tests.e2e.helpers import HASHING, chaos_catalogue

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

TOKEN = "e2e-token-0123456789abcdef"


def _get(p: Pipeline, path: str, token: str | None = None) -> tuple[int, Any]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(f"http://127.0.0.1:{p.worker.web_port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def test_a_token_guarded_worker_fed_by_the_python_client(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    env = {**HASHING, "LLMREC_WEB_TOKEN": TOKEN, "LLMREC_WEB_TOKEN_EXEMPT_HEALTH": "1"}
    p = make_pipeline(env)
    # Not the bind host (127.0.0.1): the worker runs and routes with its own published address.
    p.worker.env["LLMREC_WEB_ADVERTISED_URL"] = f"http://localhost:{p.worker.web_port}"
    catalogue = chaos_catalogue(20)
    prefix = p.settings.topic_prefix
    bootstrap = p.settings.bootstrap
    event = client.view("u-token", catalogue[0]["item_id"])

    async def feed() -> None:
        async with client.Producer(bootstrap, topic_prefix=prefix) as producer:
            for doc in catalogue:
                await producer.send_item(client.item(doc["item_id"], doc["title"]))

    async def answer() -> Recommendation:
        async with client.Producer(bootstrap, topic_prefix=prefix) as producer:
            await producer.send_event(event)
        async with client.Recommendations(bootstrap, topic_prefix=prefix, start="earliest") as rs:
            async for rec in rs:
                if isinstance(rec, Recommendation) and event["event_id"] in rec.covered_event_ids:
                    return rec
        raise AssertionError("the recommendations topic ended")

    asyncio.run(feed())
    p.start()  # polls /health without the token: the exemption lets it through
    deadline = time.monotonic() + 60
    while _get(p, "/health", TOKEN)[1].get("index_items", 0) < len(catalogue):
        assert time.monotonic() < deadline, p.log_tail()
        time.sleep(0.3)
    assert _get(p, "/health") == (200, {"status": "ok"})  # no details without the token

    rec = asyncio.run(asyncio.wait_for(answer(), 60))
    assert rec.user_id == "u-token"
    assert rec.items

    path = "/users/u-token/recommendations?k=5"
    assert _get(p, path) == (401, {"error": "this server needs Authorization: Bearer <token>"})
    assert _get(p, path, "not-the-token-but-long-enough")[0] == 401
    status, doc = _get(p, path, TOKEN)  # through `table_route`: the owner is this worker
    assert (status, doc["known_user"], len(doc["items"])) == (200, True, 5)
    assert _get(p, "/metrics")[0] == 401
