"""Ops and read endpoints on the Faust web server (port: `Settings.web_port`).

/health    broker reachable, index loaded, lag (200 when healthy, 503 otherwise)
/metrics   Prometheus text format
/users/{user_id}/recommendations   routed to the worker that owns the user's partition
/items/{item_id}/similar           any worker (each holds the full index)
"""

from __future__ import annotations

import time
from typing import Any

from faust.web import Request, Response, View

from workers import metrics
from workers.agents.runtime import Runtime
from workers.app import app
from workers.tables import user_state

__all__ = ["health", "item_similar", "prometheus", "user_recommendations"]


def _consumer_lag() -> dict[str, int]:
    """Records behind the highwater per topic, over this worker's assigned partitions."""
    consumer = app.consumer
    lag: dict[str, int] = {}
    for tp in consumer.assignment():
        committed = consumer._committed_offset.get(tp)  # type: ignore[attr-defined]  # no public accessor
        try:
            high = consumer.highwater(tp)
        except Exception:  # no highwater yet for a just-assigned partition: skip it
            continue
        if high is None:
            continue
        behind = max(0, int(high) - int(committed or 0))
        lag[tp.topic] = lag.get(tp.topic, 0) + behind
    return lag


@app.page("/health")
async def health(web: View, request: Request) -> Response:
    rt = Runtime.current
    if rt is None or not hasattr(rt, "replica"):
        return web.json({"status": "starting"}, status=503)
    replica = rt.replica
    lag = _consumer_lag()
    for topic, n in lag.items():
        metrics.LAG.labels(topic=topic).set(n)
    broker_ok = time.time() - replica.last_poll_ok < 10.0
    doc: dict[str, Any] = {
        "status": "ok" if broker_ok and replica.caught_up.is_set() else "degraded",
        "broker_reachable": broker_ok,
        "index_loaded": replica.caught_up.is_set(),
        "index_items": len(replica.index),
        "index_lag": replica.lag(),
        "consumer_lag": lag,
        "parked_events": len(rt.parking),
        "model": rt.model.model_dump(),
    }
    return web.json(doc, status=200 if doc["status"] == "ok" else 503)


@app.page("/metrics")
async def prometheus(web: View, request: Request) -> Response:
    for topic, n in _consumer_lag().items():
        metrics.LAG.labels(topic=topic).set(n)
    return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")


@app.page("/users/{user_id}/recommendations")
@app.table_route(table=user_state, match_info="user_id")
async def user_recommendations(web: View, request: Request, user_id: str) -> Response:
    rt = await Runtime.get()
    k = int(request.query.get("k", rt.settings.recommend_k))
    state = user_state.get(user_id.encode())
    items = rt.engine.recommend(state, k, now=time.time())
    return web.json(
        {
            "user_id": user_id,
            "known_user": state is not None,
            "items": [{**i.model_dump(), "title": rt.engine.title(i.item_id)} for i in items],
        }
    )


@app.page("/items/{item_id}/similar")
async def item_similar(web: View, request: Request, item_id: str) -> Response:
    rt = await Runtime.get()
    k = int(request.query.get("k", 10))
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
