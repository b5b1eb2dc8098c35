"""User path: events -> user state (table) -> recommendations topic.

An event whose Kafka key is not its user_id is re-keyed through `events-by-user`, so a user's
state is always written by the agent that owns the user's partition. The logic is the Engine's;
this module only parses, routes, reads and writes the table, and publishes.
"""

from __future__ import annotations

import logging
import time

from faust.types import EventT, StreamT

from llmrec.events import Event, Recommendation, parse_event
from llmrec.exceptions import InvalidRecordError
from workers import metrics, topics
from workers.agents.parking import ParkedEvent
from workers.agents.runtime import Runtime
from workers.app import app
from workers.dlq import dead_letter_event
from workers.tables import user_state

__all__ = ["apply_event", "events_agent", "events_by_user_agent", "handle"]

log = logging.getLogger(__name__)


async def handle(rt: Runtime, event: EventT[bytes], *, keyed_by_user: bool) -> None:
    """Validate one record, route it to its user's partition, park it or apply it."""
    raw = event.message.value or b""
    try:
        ev = parse_event(raw)
    except InvalidRecordError as exc:
        await dead_letter_event(topics.events_dlq, event, exc.reason, "invalid")
        return
    user_key = ev.user_id.encode()
    if not keyed_by_user and event.message.key != user_key:
        metrics.REROUTED.inc()
        await topics.events_by_user.send(key=user_key, value=event.message.value)
        return
    if not rt.engine.knows_item(ev.item_id):
        msg = event.message
        parked = ParkedEvent(
            ev.user_id, raw, msg.key, msg.topic, msg.partition, msg.offset, time.time()
        )
        refused = rt.parking.park(ev.item_id, parked)
        metrics.PARKED.set(len(rt.parking))
        if refused:
            await dead_letter_event(topics.events_dlq, event, refused, "unknown_item")
        return
    try:
        rec = apply_event(rt, ev, user_key)
    except Exception as exc:  # a bug must not kill the agent: DLQ it with the reason, loudly
        log.exception("failed to apply event %s", ev.event_id)
        await dead_letter_event(
            topics.events_dlq, event, f"{type(exc).__name__}: {exc}", "processing_error"
        )
        return
    await topics.recommendations.send(key=user_key, value=rec.model_dump_json().encode())
    metrics.EVENTS_IN.labels(type=ev.type.value).inc()
    metrics.RECS_OUT.inc()
    metrics.LATENCY.observe(max(0.0, time.time() - event.message.timestamp))


def apply_event(rt: Runtime, ev: Event, user_key: bytes) -> Recommendation:
    """Fold `ev` into the user's state (assigned back to the table) and recommend."""
    state = user_state.get(user_key)
    state = rt.engine.observe(state, ev)
    user_state[user_key] = state
    items = rt.engine.recommend(state, rt.settings.recommend_k, now=ev.ts)
    return Recommendation(
        user_id=ev.user_id,
        items=items,
        trigger_event_id=ev.event_id,
        generated_at=time.time(),
        model=rt.model,
    )


@app.agent(topics.events)
async def events_agent(stream: StreamT[bytes]) -> None:
    rt = await Runtime.get()
    async for event in stream.events():
        await handle(rt, event, keyed_by_user=False)


@app.agent(topics.events_by_user)
async def events_by_user_agent(stream: StreamT[bytes]) -> None:
    rt = await Runtime.get()
    async for event in stream.events():
        await handle(rt, event, keyed_by_user=True)
