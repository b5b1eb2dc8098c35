"""Ops and read endpoints on the Faust web server (port: `Settings.web_port`).

/health    broker reachable, index loaded, lag (200 when healthy, 503 otherwise)
/livez     the process and its event loop answer (200; needs no broker)
/readyz    /health's verdict alone: 200 when it would answer 200, else 503
/metrics   Prometheus text format
/users/{user_id}/recommendations   routed to the worker that owns the user's partition
/items/{item_id}/similar           any worker (each holds the full index)

Bad query parameters or ids answer 400 with {"error": ...}, never 500. Faust's own pages
(/table, /router, ...) are off unless LLMREC_WEB_DEBUG_PAGES is set (see `workers.app`).

With LLMREC_WEB_TOKEN set, every request to this web server (these views, Faust's pages, an
unknown path) needs `Authorization: Bearer <token>`, else 401 (`require_token`, a middleware
of Faust's aiohttp application). Routed requests keep it: Faust's router forwards the request's
headers to the owner, which checks the token again. LLMREC_WEB_TOKEN_EXEMPT_HEALTH opens
the probes (/health, /livez, /readyz) alone; /health answers only `{"status": ...}` to a
request without the token, and /livez and /readyz never say more.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web as aioweb
from aiohttp.typedefs import Handler
from faust.web import Request, Response, View

from llmrec.events import MAX_ID_CHARS
from llmrec.privacy import pseudonymise
from workers import consumer_lag, metrics, topics
from workers.agents.runtime import Runtime
from workers.app import app
from workers.settings import get_settings
from workers.tables import user_state

__all__ = [
    "K_MAX",
    "MAX_ID_CHARS",
    "bearer_ok",
    "check_id",
    "health",
    "item_similar",
    "livez",
    "parse_k",
    "prometheus",
    "readyz",
    "require_token",
    "user_recommendations",
]

K_MAX = 200
"""Largest list a request may ask for: the upper bound of `Settings.recommend_k`."""
SIMILAR_K = 10
PROBES = frozenset({"/health", "/livez", "/readyz"})
"""The paths LLMREC_WEB_TOKEN_EXEMPT_HEALTH opens to a request without the token."""


def parse_k(raw: str | None, default: int) -> int:
    """The `k` query parameter: `default` when absent, else an integer in 1..K_MAX.

    Raises ValueError naming the parameter and the allowed range (the view answers 400).
    """
    if raw is None:
        return default
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or not 1 <= int(raw) <= K_MAX:
        raise ValueError(f"k must be an integer from 1 to {K_MAX}")
    return int(raw)


def check_id(name: str, value: str) -> str:
    """`value` if it is a usable path id (1..MAX_ID_CHARS characters), else ValueError."""
    if not value or len(value) > MAX_ID_CHARS:
        raise ValueError(f"{name} must be 1 to {MAX_ID_CHARS} characters long")
    return value


def bearer_ok(authorization: str | None, token: str) -> bool:
    """Whether an `Authorization` header value is `Bearer <token>` (the scheme in any case).

    The token is compared in constant time (`hmac.compare_digest`): how long a refusal takes
    says nothing about how much of a guess was right.
    """
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(
        given.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8")
    )


def _unauthorized(error: str, *, invalid: bool) -> aioweb.Response:
    challenge = 'Bearer realm="llmrec"' + (', error="invalid_token"' if invalid else "")
    return aioweb.json_response(
        {"error": error}, status=401, headers={"WWW-Authenticate": challenge}
    )


@aioweb.middleware
async def require_token(request: aioweb.Request, handler: Handler) -> aioweb.StreamResponse:
    """Refuse (401) a request without `Authorization: Bearer <LLMREC_WEB_TOKEN>`; a no-op
    when no token is set. The probes (`PROBES`) pass when LLMREC_WEB_TOKEN_EXEMPT_HEALTH is set."""
    settings = get_settings()
    token = settings.web_token
    if token is None or (settings.web_token_exempt_health and request.path in PROBES):
        return await handler(request)
    header = request.headers.get("Authorization")
    if header is None:
        return _unauthorized("this server needs Authorization: Bearer <token>", invalid=False)
    if not bearer_ok(header, token.get_secret_value()):
        return _unauthorized("invalid bearer token", invalid=True)
    return await handler(request)


def _install_token_check() -> None:
    """Put `require_token` in front of every route of Faust's web server (ours and its own)."""
    web_app = getattr(app.web, "web_app", None)
    if not isinstance(web_app, aioweb.Application):
        raise TypeError(f"the web token needs Faust's aiohttp web driver, not {app.web!r}")
    if require_token not in web_app.middlewares:
        web_app.middlewares.append(require_token)


def _shows_details(request: Request) -> bool:
    """False only for a request without the token that reached /health through the exemption."""
    token = get_settings().web_token
    return token is None or bearer_ok(
        request.headers.get("Authorization"), token.get_secret_value()
    )


def _consumer_lag() -> dict[str, int]:
    """Records behind the high-water mark per input topic, over this worker's partitions
    (`workers.consumer_lag`, which also sets the per-partition gauge)."""
    lag: dict[str, int] = {}
    for tp, n in consumer_lag.refresh().items():
        lag[tp.topic] = lag.get(tp.topic, 0) + n
    return lag


_rebalances_seen = 0
_searches_seen = (0, 0)  # index answers (from memory, from the graph) already exported


def _count_rebalances() -> None:
    """Brings `llmrec_rebalances_total` up to Faust's own count (`app.rebalancing_count`)."""
    global _rebalances_seen  # noqa: PLW0603 - the count already exported, one per process
    now = int(getattr(app, "rebalancing_count", 0))
    if now > _rebalances_seen:
        metrics.REBALANCES.inc(now - _rebalances_seen)
        _rebalances_seen = now


def _count_index_searches() -> None:
    """Brings `llmrec_index_searches_total` up to the local index's own counts."""
    global _searches_seen  # noqa: PLW0603 - the counts already exported, one per process
    rt = Runtime.current
    if rt is None or not hasattr(rt, "replica"):
        return
    index = rt.replica.index
    memory, graph = index.answer_hits, index.answer_misses
    metrics.INDEX_SEARCHES.labels(answer="memory").inc(max(0, memory - _searches_seen[0]))
    metrics.INDEX_SEARCHES.labels(answer="graph").inc(max(0, graph - _searches_seen[1]))
    _searches_seen = (memory, graph)


def _ready(rt: Runtime) -> tuple[bool, bool]:
    """(broker answered in the last 2 s, both replicas caught up): ready when both."""
    return rt.replica.broker_ok(), rt.replica.caught_up.is_set() and (
        rt.stats_replica.caught_up.is_set()
    )


@app.page("/livez")
async def livez(web: View, request: Request) -> Response:
    """Alive: this coroutine ran, so the event loop is turning (a blocked loop never answers,
    and the probe's timeout fails it). No broker or replica is asked: an outage of theirs is
    not cured by a restart."""
    return web.json({"status": "alive"})


@app.page("/readyz")
async def readyz(web: View, request: Request) -> Response:
    """Ready for traffic by /health's criteria (200), else 503; the body is the status alone."""
    rt = Runtime.current
    if rt is None or not hasattr(rt, "stats_replica"):
        return web.json({"status": "starting"}, status=503)
    broker_ok, loaded = _ready(rt)
    if broker_ok and loaded:
        return web.json({"status": "ready"})
    return web.json({"status": "not ready"}, status=503)


@app.page("/health")
async def health(web: View, request: Request) -> Response:
    rt = Runtime.current
    if rt is None or not hasattr(rt, "stats_replica"):
        return web.json({"status": "starting"}, status=503)
    replica = rt.replica
    lag = _consumer_lag()
    broker_ok, loaded = _ready(rt)  # a metadata answer in the last 2 s; replicas caught up
    stats = rt.stats_replica
    doc: dict[str, Any] = {
        "status": "ok" if broker_ok and loaded else "degraded",
        "broker_reachable": broker_ok,
        "index_loaded": replica.caught_up.is_set(),
        "index_items": len(replica.index),
        "index_lag": replica.lag(),
        "stats_loaded": stats.caught_up.is_set(),
        "stats_lag": stats.lag(),
        "consumer_lag": lag,
        "parked_events": lag.get(topics.events_parked.get_topic_name(), 0),
        "replica_restarts": replica.failures + stats.failures,
        "model": rt.model.model_dump(),
    }
    status = 200 if doc["status"] == "ok" else 503
    if not _shows_details(request):
        return web.json({"status": doc["status"]}, status=status)
    return web.json(doc, status=status)


@app.page("/metrics")
async def prometheus(web: View, request: Request) -> Response:
    _consumer_lag()  # sets llmrec_consumer_lag{topic,partition}: in memory, no broker request
    _count_rebalances()
    _count_index_searches()
    return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")


@app.page("/users/{user_id}/recommendations")
async def user_recommendations(web: View, request: Request, user_id: str) -> Response:
    # Checked here, before routing: a bad request is answered by whichever worker gets it.
    try:
        check_id("user_id", user_id)
        parse_k(request.query.get("k"), get_settings().recommend_k)
    except ValueError as exc:
        return web.error(400, str(exc))
    return await _on_owner(web, request, user_id=user_id)


async def _recommend_here(web: View, request: Request, user_id: str) -> Response:
    """The list, computed on the worker that owns the user's partition."""
    rt = await Runtime.get()
    k = parse_k(request.query.get("k"), rt.settings.recommend_k)
    # Routed by the id asked for (events are keyed by it); kept under its pseudonym if any.
    key = user_id if rt.user_id_key is None else pseudonymise(user_id, rt.user_id_key)
    state = user_state.get(key.encode())
    items = rt.engine.recommend(state, k, now=time.time())
    return web.json(
        {
            "user_id": user_id,
            "known_user": state is not None,
            "items": [{**i.model_dump(), "title": rt.engine.title(i.item_id)} for i in items],
        }
    )


# Proxies the request to the owner's same URL, found with `app.router` (the assignor's host
# map): it needs no /router page, which stays off by default.
_on_owner: Callable[..., Awaitable[Response]] = app.table_route(
    table=user_state, match_info="user_id"
)(_recommend_here)


@app.page("/items/{item_id}/similar")
async def item_similar(web: View, request: Request, item_id: str) -> Response:
    try:
        check_id("item_id", item_id)
        k = parse_k(request.query.get("k"), SIMILAR_K)
    except ValueError as exc:
        return web.error(400, str(exc))
    rt = await Runtime.get()
    index = rt.replica.index
    vec = index.vector(item_id)
    if vec is None:
        return web.json({"error": f"unknown item {item_id!r}"}, status=404)
    hits = index.search(vec, k, exclude={item_id})
    return web.json(
        {
            "item_id": item_id,
            "title": rt.engine.title(item_id),
            "similar": [{"item_id": i, "score": s, "title": rt.engine.title(i)} for i, s in hits],
        }
    )


_install_token_check()
