"""Web views without a running worker: parameter checks, Faust's pages off, routing to the owner."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import annotated_types
import orjson
import pytest
from aiohttp import web as aioweb
from multidict import MultiDict
from yarl import URL

from workers import web
from workers.app import app, make_app
from workers.settings import Settings


def _request(path: str, query: Mapping[str, str], match_info: Mapping[str, str]) -> Any:
    url = URL(str(app.conf.canonical_url)).with_path(path).with_query(dict(query))
    return SimpleNamespace(
        url=url, method="GET", headers={}, query=MultiDict(query), match_info=dict(match_info)
    )


def test_parse_k_accepts_1_to_200_and_defaults_when_absent() -> None:
    assert web.parse_k(None, 10) == 10
    assert web.parse_k("1", 10) == 1
    assert web.parse_k("200", 10) == 200
    assert web.parse_k(" 7 ", 10) == 7


@pytest.mark.parametrize("raw", ["0", "201", "-1", "", "abc", "1.5", "1e3", "٣", "9" * 5000])
def test_parse_k_refuses_anything_else_naming_k_and_the_range(raw: str) -> None:
    with pytest.raises(ValueError, match=r"^k must be an integer from 1 to 200$"):
        web.parse_k(raw, 10)


def test_k_max_is_the_settings_bound_of_recommend_k() -> None:
    metadata = Settings.model_fields["recommend_k"].metadata
    assert [m.le for m in metadata if isinstance(m, annotated_types.Le)] == [web.K_MAX]


def test_check_id_bounds_the_length() -> None:
    assert web.check_id("user_id", "u" * 256) == "u" * 256
    with pytest.raises(ValueError, match="user_id must be 1 to 256 characters"):
        web.check_id("user_id", "u" * 257)
    with pytest.raises(ValueError, match="item_id"):
        web.check_id("item_id", "")


USERS, ITEMS = web.user_recommendations, web.item_similar


@pytest.mark.parametrize(
    ("view", "id_name", "id_value", "query", "error"),
    [
        (USERS, "user_id", "u1", {"k": "x"}, "k must be an integer from 1 to 200"),
        (USERS, "user_id", "u1", {"k": "0"}, "k must be an integer from 1 to 200"),
        (USERS, "user_id", "u" * 300, {}, "user_id must be 1 to 256 characters long"),
        (ITEMS, "item_id", "i1", {"k": "201"}, "k must be an integer from 1 to 200"),
        (ITEMS, "item_id", "i" * 257, {}, "item_id must be 1 to 256 characters long"),
    ],
)
async def test_bad_parameters_answer_400_with_a_json_error(
    view: Any, id_name: str, id_value: str, query: dict[str, str], error: str
) -> None:
    ids = {id_name: id_value}
    response = await view(app, app.web).get(_request("/", query, ids), **ids)
    assert response.status == 400
    assert orjson.loads(response.body) == {"error": error}


def test_faust_pages_are_off_by_default_and_on_when_asked() -> None:
    flags = ["web_tables_enabled", "web_router_enabled", "web_graph_enabled", "web_stats_enabled"]
    off = make_app(Settings(app_id="t-pages-off", web_debug_pages=False))
    assert not any(getattr(off.conf, f) for f in [*flags, "web_metrics_enabled"])
    assert [p for p, _ in off.web.blueprints._enabled] == [""]  # the plain production index
    on = make_app(Settings(app_id="t-pages-on", web_debug_pages=True))
    assert all(getattr(on.conf, f) for f in flags)
    assert {"/table", "/router", "/graph", "/performance"} <= {
        p for p, _ in on.web.blueprints._enabled
    }


async def test_recommendations_reach_the_owning_worker_with_the_router_page_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`table_route` proxies through `app.router` to the owner's same URL; no /router page."""
    assert not app.conf.web_router_enabled
    seen: list[str] = []

    async def owner(request: aioweb.Request) -> aioweb.Response:
        seen.append(str(request.rel_url))
        return aioweb.json_response({"from": "owner"})

    peer = aioweb.Application()
    peer.router.add_get("/users/{user_id}/recommendations", owner)
    runner = aioweb.AppRunner(peer)
    await runner.setup()
    site = aioweb.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    monkeypatch.setattr(app.router, "key_store", lambda table, key: URL(f"http://127.0.0.1:{port}"))
    try:
        request = _request("/users/u1/recommendations", {"k": "5"}, {"user_id": "u1"})
        response = await web.user_recommendations(app, app.web).get(request, user_id="u1")
    finally:
        await app.http_client.close()
        app.http_client = None
        await runner.cleanup()
    assert response.status == 200
    assert orjson.loads(response.body) == {"from": "owner"}
    assert seen == ["/users/u1/recommendations?k=5"]
