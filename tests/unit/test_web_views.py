"""Web views without a running worker: parameter checks, Faust's pages off, routing to the owner."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from types import SimpleNamespace
from typing import Any

import annotated_types
import orjson
import pytest
from aiohttp import web as aioweb
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict, MultiDict
from pydantic import ValidationError
from yarl import URL

from workers import web
from workers.app import app, make_app
from workers.metrics import REGISTRY
from workers.settings import Settings


def _request(
    path: str,
    query: Mapping[str, str],
    match_info: Mapping[str, str],
    headers: Mapping[str, str] | None = None,
) -> Any:
    url = URL(str(app.conf.canonical_url)).with_path(path).with_query(dict(query))
    return SimpleNamespace(
        url=url,
        method="GET",
        headers=CIMultiDict(headers or {}),
        query=MultiDict(query),
        match_info=dict(match_info),
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


@contextlib.asynccontextmanager
async def _owner(peer: aioweb.Application, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """`peer` served on a free port as the owner every user is routed to (`app.router`)."""
    runner = aioweb.AppRunner(peer)
    await runner.setup()
    site = aioweb.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    monkeypatch.setattr(app.router, "key_store", lambda table, key: URL(f"http://127.0.0.1:{port}"))
    try:
        yield
    finally:
        await app.http_client.close()
        app.http_client = None
        await runner.cleanup()


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
    async with _owner(peer, monkeypatch):
        request = _request("/users/u1/recommendations", {"k": "5"}, {"user_id": "u1"})
        response = await web.user_recommendations(app, app.web).get(request, user_id="u1")
    assert response.status == 200
    assert orjson.loads(response.body) == {"from": "owner"}
    assert seen == ["/users/u1/recommendations?k=5"]


# -- the bearer token ----------------------------------------------------------------------------

TOKEN = "t0ken-for-the-unit-tests-0123456789"


def _with_token(monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    settings = Settings(web_token=TOKEN, **extra)
    monkeypatch.setattr(web, "get_settings", lambda: settings)


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),  # the scheme is case-insensitive (RFC 7235)
        (f"  Bearer   {TOKEN} ", True),
        (None, False),
        ("", False),
        ("Bearer", False),
        (f"Basic {TOKEN}", False),
        (f"Bearer {TOKEN[:-1]}", False),
        (f"Bearer {TOKEN}x", False),
        (f"Bearer {TOKEN.upper()}", False),
        ("Bearer ünïcode-\udcff", False),  # never a crash on odd header bytes
    ],
)
def test_bearer_ok_accepts_only_the_exact_token(header: str | None, ok: bool) -> None:
    assert web.bearer_ok(header, TOKEN) is ok


def test_the_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = web.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(web.hmac, "compare_digest", spy)
    assert not web.bearer_ok("Bearer guess", TOKEN)
    assert web.bearer_ok(f"Bearer {TOKEN}", TOKEN)
    assert calls == [(b"guess", TOKEN.encode()), (TOKEN.encode(), TOKEN.encode())]


def test_the_token_check_guards_every_route_of_the_worker_web_server() -> None:
    """One middleware on Faust's aiohttp application: our views and Faust's pages behind it."""
    web_app = app.web.web_app  # type: ignore[attr-defined]
    assert web.require_token in web_app.middlewares
    paths = {r.resource.canonical for r in web_app.router.routes() if r.resource is not None}
    assert {
        "/health",
        "/livez",
        "/readyz",
        "/metrics",
        "/users/{user_id}/recommendations",
        "/items/{item_id}/similar",
    } <= paths


class _Server:
    """The real views behind `require_token` in a real aiohttp server (no worker running)."""

    def __init__(self) -> None:
        views = {
            "/health": web.health,
            "/livez": web.livez,
            "/readyz": web.readyz,
            "/metrics": web.prometheus,
            "/users/{user_id}/recommendations": web.user_recommendations,
            "/items/{item_id}/similar": web.item_similar,
        }
        self.app = aioweb.Application(middlewares=[web.require_token])
        for path, view in views.items():
            self.app.router.add_get(path, self._handler(view))
        self.client = TestClient(TestServer(self.app))

    async def __aenter__(self) -> _Server:
        await self.client.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()

    @staticmethod
    def _handler(view: Any) -> Any:
        async def handle(request: aioweb.Request) -> Any:
            return await view(app, app.web)(request)

        return handle

    async def get(self, path: str, token: str | None = None) -> tuple[int, Any, Any]:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        async with self.client.get(path, headers=headers) as resp:
            body = await resp.read()
            return resp.status, resp.headers, orjson.loads(body) if body[:1] == b"{" else body


# Answered by the views without a running worker: 400 on a bad k, 503 "starting" on /health.
GUARDED = [
    ("/health", 503),
    ("/livez", 200),
    ("/readyz", 503),
    ("/users/u1/recommendations?k=0", 400),
    ("/items/i1/similar?k=0", 400),
    ("/table/user-state/u1", 404),  # an unknown path (a Faust page turned off) is guarded too
]


@pytest.mark.parametrize(("path", "status"), GUARDED)
async def test_without_a_token_setting_every_view_is_open(path: str, status: int) -> None:
    assert web.get_settings().web_token is None
    async with _Server() as server:
        assert (await server.get(path))[0] == status


@pytest.mark.parametrize(("path", "status"), GUARDED)
async def test_with_a_token_every_view_answers_401_unless_the_request_carries_it(
    monkeypatch: pytest.MonkeyPatch, path: str, status: int
) -> None:
    _with_token(monkeypatch)
    async with _Server() as server:
        code, headers, body = await server.get(path)
        assert (code, body) == (401, {"error": "this server needs Authorization: Bearer <token>"})
        assert headers["WWW-Authenticate"] == 'Bearer realm="llmrec"'
        code, headers, body = await server.get(path, token="wrong-token-of-some-length")
        assert (code, body) == (401, {"error": "invalid bearer token"})
        assert headers["WWW-Authenticate"] == 'Bearer realm="llmrec", error="invalid_token"'
        assert (await server.get(path, token=TOKEN))[0] == status


async def test_metrics_need_the_token_too(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_token(monkeypatch)
    monkeypatch.setattr(web, "_consumer_lag", dict)  # no consumer runs here
    async with _Server() as server:
        assert (await server.get("/metrics"))[0] == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with server.client.get("/metrics", headers=auth) as resp:
            assert resp.status == 200
            assert b"llmrec_" in await resp.read()  # Prometheus text, not JSON


async def test_metrics_count_the_index_searches_answered_from_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rt = _fake_runtime()
    rt.replica.index = SimpleNamespace(answer_hits=5, answer_misses=2)
    monkeypatch.setattr(web.Runtime, "current", rt)
    monkeypatch.setattr(web, "_consumer_lag", dict)
    monkeypatch.setattr(web, "_searches_seen", (0, 0))

    def count(answer: str) -> float:
        value = REGISTRY.get_sample_value("llmrec_index_searches_total", {"answer": answer})
        return value or 0.0

    before = count("memory"), count("graph")
    async with _Server() as server:
        assert (await server.get("/metrics"))[0] == 200
        rt.replica.index.answer_hits = 7  # two more answered from memory, none searched
        assert (await server.get("/metrics"))[0] == 200
    assert (count("memory") - before[0], count("graph") - before[1]) == (7, 2)


def _fake_runtime(*, broker: bool = True) -> SimpleNamespace:
    caught_up = asyncio.Event()
    caught_up.set()
    replica = SimpleNamespace(
        broker_ok=lambda: broker, caught_up=caught_up, index=[1, 2, 3], lag=lambda: 0, failures=0
    )
    stats = SimpleNamespace(caught_up=caught_up, lag=lambda: 0, failures=0)
    model = SimpleNamespace(model_dump=lambda: {"encoder": "e", "variant": "v", "version": "1"})
    return SimpleNamespace(replica=replica, stats_replica=stats, model=model)


async def test_an_exempt_health_answers_its_status_alone_without_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _with_token(monkeypatch, web_token_exempt_health=True)
    monkeypatch.setattr(web.Runtime, "current", _fake_runtime())
    monkeypatch.setattr(web, "_consumer_lag", dict)
    async with _Server() as server:
        assert (await server.get("/health"))[::2] == (200, {"status": "ok"})
        wrong = await server.get("/health", token="wrong-token-of-some-length")
        assert wrong[::2] == (200, {"status": "ok"})
        code, _, full = await server.get("/health", token=TOKEN)
        assert (code, full["status"], full["index_items"]) == (200, "ok", 3)
        assert (await server.get("/metrics"))[0] == 401  # the exemption is /health's alone


async def test_livez_answers_without_a_runtime_or_a_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(web.Runtime, "current", None)
    async with _Server() as server:
        assert (await server.get("/livez"))[::2] == (200, {"status": "alive"})
    monkeypatch.setattr(web.Runtime, "current", _fake_runtime(broker=False))
    async with _Server() as server:
        assert (await server.get("/livez"))[0] == 200
        assert (await server.get("/readyz"))[::2] == (503, {"status": "not ready"})


@pytest.mark.parametrize(
    ("runtime", "broker", "caught_up", "status"),
    [
        (False, True, True, (503, {"status": "starting"})),
        (True, False, True, (503, {"status": "not ready"})),
        (True, True, False, (503, {"status": "not ready"})),
        (True, True, True, (200, {"status": "ready"})),
    ],
)
async def test_readyz_answers_200_exactly_when_health_does(
    monkeypatch: pytest.MonkeyPatch, runtime: bool, broker: bool, caught_up: bool, status: Any
) -> None:
    rt = _fake_runtime(broker=broker) if runtime else None
    if rt is not None and not caught_up:
        rt.stats_replica.caught_up = asyncio.Event()
    monkeypatch.setattr(web.Runtime, "current", rt)
    monkeypatch.setattr(web, "_consumer_lag", dict)
    async with _Server() as server:
        assert (await server.get("/readyz"))[::2] == status
        assert (await server.get("/health"))[0] == status[0]


async def test_the_health_exemption_opens_livez_and_readyz_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _with_token(monkeypatch, web_token_exempt_health=True)
    monkeypatch.setattr(web.Runtime, "current", _fake_runtime())
    async with _Server() as server:
        assert (await server.get("/livez"))[::2] == (200, {"status": "alive"})
        assert (await server.get("/readyz"))[::2] == (200, {"status": "ready"})
        assert (await server.get("/items/i1/similar?k=0"))[0] == 401


async def test_health_is_guarded_like_every_view_unless_exempted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _with_token(monkeypatch)
    monkeypatch.setattr(web.Runtime, "current", _fake_runtime())
    monkeypatch.setattr(web, "_consumer_lag", dict)
    async with _Server() as server:
        assert (await server.get("/health"))[0] == 401
        assert (await server.get("/health", token=TOKEN))[2]["index_items"] == 3


async def test_a_routed_request_carries_the_token_to_the_owner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Faust's router forwards the request's headers; the owner checks the token again."""
    _with_token(monkeypatch)
    seen: list[str | None] = []

    async def owner(request: aioweb.Request) -> aioweb.Response:
        seen.append(request.headers.get("Authorization"))
        return aioweb.json_response({"from": "owner"})

    peer = aioweb.Application(middlewares=[web.require_token])
    peer.router.add_get("/users/{user_id}/recommendations", owner)
    view = web.user_recommendations(app, app.web)
    async with _owner(peer, monkeypatch):
        ids = {"user_id": "u1"}
        good = {"Authorization": f"Bearer {TOKEN}"}
        routed = await view.get(_request("/users/u1/recommendations", {}, ids, good), **ids)
        bad = {"Authorization": "Bearer wrong-token-of-some-length"}
        refused = await view.get(_request("/users/u1/recommendations", {}, ids, bad), **ids)
    assert (routed.status, orjson.loads(routed.body)) == (200, {"from": "owner"})
    assert seen == [f"Bearer {TOKEN}"]  # the refused one never reached the owner's handler
    assert refused.status == 401


# -- the advertised URL ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("http://worker-0.llmrec:6066", "http://worker-0.llmrec:6066"),
        ("https://10.0.0.7:443/", "https://10.0.0.7:443"),
        (" http://[fd00::7]:6066 ", "http://[fd00::7]:6066"),
    ],
)
def test_the_advertised_url_becomes_fausts_canonical_url(raw: str, canonical: str) -> None:
    settings = Settings(web_advertised_url=raw, web_host="0.0.0.0")
    assert settings.web_advertised_url == canonical
    made = make_app(settings.model_copy(update={"app_id": f"t-adv-{canonical[-4:]}"}))
    assert made.conf.canonical_url == URL(canonical)  # yarl drops a scheme's default port
    assert (made.conf.web_bind, made.conf.web_port) == ("0.0.0.0", 6066)


def test_without_an_advertised_url_faust_advertises_the_web_host_and_port() -> None:
    made = make_app(Settings(app_id="t-adv-none", web_host="127.0.0.2", web_port=7001))
    assert str(made.conf.canonical_url) == "http://127.0.0.2:7001"


@pytest.mark.parametrize(
    "raw",
    [
        "worker-0:6066",  # no scheme
        "ftp://worker-0:6066",
        "http://worker-0",  # no port
        "http://:6066",  # no host
        "http://worker-0:99999",
        "http://worker-0:6066/llmrec",  # a path: the router keeps the request's own path
        "http://worker-0:6066?x=1",
        "http://user:pw@worker-0:6066",
    ],
)
def test_an_unusable_advertised_url_is_refused(raw: str) -> None:
    with pytest.raises(ValidationError, match=r"web_advertised_url must be http\(s\)://host:port"):
        Settings(web_advertised_url=raw)


@pytest.mark.parametrize("raw", ["short", "x" * 15, "sixteen chars ok", "tab\tinside-a-long-token"])
def test_a_guessable_or_unsendable_token_is_refused(raw: str) -> None:
    with pytest.raises(ValidationError, match="web_token must be at least 16 printable ASCII"):
        Settings(web_token=raw)
