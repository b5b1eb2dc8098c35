"""User path: events -> user state (table) -> recommendations topic.

An event whose Kafka key is not its user_id is re-keyed through `events-by-user`, so a user's
state is always written by the agent that owns the user's partition. The logic is the Engine's;
this module only parses, routes, reads and writes the table, and publishes.
"""

from __future__ import annotations

import contextvars
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from faust.streams import _current_event  # private; see _as_of
from faust.types import EventT, StreamT

from llmrec.events import Event, Recommendation, parse_event
from llmrec.exceptions import InvalidRecordError
from workers import metrics, topics
from workers.agents.parking import ParkedEvent
from workers.agents.runtime import Runtime
from workers.app import app
from workers.dlq import dead_letter_event
from workers.tables import user_state

__all__ = ["admit", "apply_events", "events_agent", "events_by_user_agent", "handle"]

log = logging.getLogger(__name__)


async def admit(rt: Runtime, event: EventT[bytes], *, keyed_by_user: bool) -> Event | None:
    """Validate one record and route it: the Event when this agent applies it, else None
    (sent to the DLQ, re-keyed to its user's partition, or parked for an unknown item)."""
    raw = event.message.value or b""
    try:
        ev = parse_event(raw)
    except InvalidRecordError as exc:
        await dead_letter_event(topics.events_dlq, event, exc.reason, "invalid")
        return None
    if not keyed_by_user and event.message.key != ev.user_id.encode():
        metrics.REROUTED.inc()
        await topics.events_by_user.send(key=ev.user_id.encode(), value=event.message.value)
        return None
    if not rt.engine.knows_item(ev.item_id):
        msg = event.message
        parked = ParkedEvent(
            ev.user_id, raw, msg.key, msg.topic, msg.partition, msg.offset, time.time()
        )
        refused = rt.parking.park(ev.item_id, parked)
        metrics.PARKED.set(len(rt.parking))
        if refused:
            await dead_letter_event(topics.events_dlq, event, refused, "unknown_item")
        return None
    return ev


async def handle(
    rt: Runtime,
    batch: Sequence[EventT[bytes]],
    *,
    keyed_by_user: bool,
) -> None:
    """Admit a micro-batch, then answer each user's run of events with one recommendation.

    A user's events in the batch are folded in arrival order (one partition, so in order) and
    recommended for once: at high rates this saves most `recommend` calls; at low rates a batch
    holds one event and nothing changes but a wait of at most `event_batch_within_s`.
    """
    runs: dict[str, list[tuple[Event, EventT[bytes]]]] = {}
    for event in batch:
        ev = await admit(rt, event, keyed_by_user=keyed_by_user)
        if ev is not None:
            runs.setdefault(ev.user_id, []).append((ev, event))
    for user_id, run in runs.items():
        user_key = user_id.encode()
        try:
            rec = _as_of(run[-1][1], apply_events, rt, [ev for ev, _ in run], user_key)
        except Exception as exc:  # a bug must not kill the agent: DLQ the run, loudly
            log.exception("failed to apply %d events of one user", len(run))
            for _, event in run:
                await dead_letter_event(
                    topics.events_dlq, event, f"{type(exc).__name__}: {exc}", "processing_error"
                )
            continue
        await topics.recommendations.send(key=user_key, value=rec.model_dump_json().encode())
        metrics.RECS_OUT.inc()
        done = time.time()
        for ev, event in run:
            metrics.EVENTS_IN.labels(type=ev.type.value).inc()
            metrics.LATENCY.observe(max(0.0, done - event.message.timestamp))


def apply_events(rt: Runtime, events: Sequence[Event], user_key: bytes) -> Recommendation:
    """Fold `events` (one user's, in order) into the state, assign it back, and recommend."""
    state = user_state.get(user_key)
    for ev in events:
        state = rt.engine.observe(state, ev)
    user_state[user_key] = state
    last = events[-1]
    items = rt.engine.recommend(state, rt.settings.recommend_k, now=last.ts)
    return Recommendation(
        user_id=last.user_id,
        items=items,
        trigger_event_id=last.event_id,
        covered_event_ids=[ev.event_id for ev in events],
        generated_at=time.time(),
        model=rt.model,
    )


def _as_of(event: EventT[bytes], fn: Callable[..., Recommendation], *args: Any) -> Recommendation:
    """Run `fn` with `event` as Faust's current event, in a private copy of the context.

    A table write takes its changelog partition from `faust.streams.current_event()`, which
    `take_events` leaves unset (faust-streaming #497). Only that context variable is set, and
    only in a copy: `Stream._set_current_event` also sets `stream.current_event`, which the
    take buffer reads, and using it lost one event and answered another twice per batch.
    """

    def run() -> Recommendation:
        _current_event.set(weakref.ref(event))
        return fn(*args)

    return contextvars.copy_context().run(run)


async def _consume(stream: StreamT[bytes], *, keyed_by_user: bool) -> None:
    rt = await Runtime.get()
    s = rt.settings
    async for batch in stream.take_events(  # type: ignore[attr-defined]  # not in StreamT
        s.event_batch_size, within=s.event_batch_within_s
    ):
        await handle(rt, batch, keyed_by_user=keyed_by_user)


@app.agent(topics.events)
async def events_agent(stream: StreamT[bytes]) -> None:
    await _consume(stream, keyed_by_user=False)


@app.agent(topics.events_by_user)
async def events_by_user_agent(stream: StreamT[bytes]) -> None:
    await _consume(stream, keyed_by_user=True)
