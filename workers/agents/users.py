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

from llmrec.events import Event, Recommendation, RecommendedItem, parse_event
from llmrec.exceptions import InvalidRecordError
from llmrec.types import Vector
from workers import metrics, topics
from workers.agents.parking import ParkedEvent
from workers.agents.runtime import Runtime
from workers.app import app
from workers.dlq import dead_letter_event
from workers.tables import user_state

__all__ = ["admit", "events_agent", "events_by_user_agent", "fold_events", "handle"]

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
    recommended for once: at high rates this saves most `recommend` calls, and every user's
    candidates are ranked in one batched call; at low rates a batch holds one event and nothing
    changes but a wait of at most `event_batch_within_s`.
    """
    runs: dict[str, list[tuple[Event, EventT[bytes]]]] = {}
    for event in batch:
        ev = await admit(rt, event, keyed_by_user=keyed_by_user)
        if ev is not None:
            runs.setdefault(ev.user_id, []).append((ev, event))
    vectors = _encode_texts(rt, [ev for run in runs.values() for ev, _ in run])
    folded: list[tuple[list[tuple[Event, EventT[bytes]]], bytes]] = []
    for run in runs.values():
        events = [ev for ev, _ in run]
        vecs = [vectors.get(id(ev)) for ev in events] if vectors is not None else None
        try:
            state = _as_of(run[-1][1], fold_events, rt, events, vecs)
        except Exception as exc:  # a bug must not kill the agent: DLQ the run, loudly
            log.exception("failed to apply %d events of one user", len(run))
            await _dead_letter_run(run, exc)
            continue
        folded.append((run, state))
    for (run, _), rec in zip(folded, _recommend_all(rt, folded), strict=True):
        if isinstance(rec, Exception):
            await _dead_letter_run(run, rec)
            continue
        user_key = run[-1][0].user_id.encode()
        await topics.recommendations.send(key=user_key, value=rec.model_dump_json().encode())
        metrics.RECS_OUT.inc()
        done = time.time()
        for ev, event in run:
            metrics.EVENTS_IN.labels(type=ev.type.value).inc()
            metrics.LATENCY.observe(max(0.0, done - event.message.timestamp))


async def _dead_letter_run(run: Sequence[tuple[Event, EventT[bytes]]], exc: Exception) -> None:
    for _, event in run:
        await dead_letter_event(
            topics.events_dlq, event, f"{type(exc).__name__}: {exc}", "processing_error"
        )


def _encode_texts(rt: Runtime, events: Sequence[Event]) -> dict[int, Vector | None] | None:
    """Every text of the micro-batch encoded in one call, by `id(event)`; None if that call
    fails (each user's texts are then encoded with the user, so a bad one costs only them)."""
    try:
        return {id(ev): v for ev, v in zip(events, rt.engine.encode_texts(events), strict=True)}
    except Exception:
        log.exception("batched text encoding failed; encoding user by user")
        return None


def fold_events(
    rt: Runtime, events: Sequence[Event], vectors: Sequence[Vector | None] | None = None
) -> bytes:
    """Fold `events` (one user's, in order) into the user's state and assign it back to the
    table; `vectors` are their texts already encoded, else they are encoded here in one call."""
    user_key = events[0].user_id.encode()
    state: bytes | None = user_state.get(user_key)
    new = b""
    vecs = vectors if vectors is not None else rt.engine.encode_texts(events)
    for ev, vec in zip(events, vecs, strict=True):
        state = new = rt.engine.observe(state, ev, text_vec=vec)
    user_state[user_key] = new
    return new


def _recommend_all(
    rt: Runtime, folded: Sequence[tuple[Sequence[tuple[Event, EventT[bytes]]], bytes]]
) -> list[Recommendation | Exception]:
    """One list per folded user, ranked in one batched call; if the batch fails, user by user,
    so that a failure costs only the user it belongs to."""
    requests = [(state, run[-1][0].ts, ()) for run, state in folded]
    k = rt.settings.recommend_k
    lists: list[list[RecommendedItem] | Exception]
    try:
        lists = list(rt.engine.recommend_batch(requests, k))
    except Exception:
        log.exception("batched recommend failed; retrying user by user")
        lists = []
        for req in requests:
            try:
                lists.append(rt.engine.recommend_batch([req], k)[0])
            except Exception as exc:
                log.exception("recommend failed for one user")
                lists.append(exc)
    out: list[Recommendation | Exception] = []
    for (run, _), items in zip(folded, lists, strict=True):
        if isinstance(items, Exception):
            out.append(items)
            continue
        events = [ev for ev, _ in run]
        last = events[-1]
        out.append(
            Recommendation(
                user_id=last.user_id,
                items=items,
                trigger_event_id=last.event_id,
                covered_event_ids=[ev.event_id for ev in events],
                generated_at=time.time(),
                model=rt.model,
            )
        )
    return out


def _as_of(event: EventT[bytes], fn: Callable[..., bytes], *args: Any) -> bytes:
    """Run `fn` with `event` as Faust's current event, in a private copy of the context.

    A table write takes its changelog partition from `faust.streams.current_event()`, which
    `take_events` leaves unset (faust-streaming #497). Only that context variable is set, and
    only in a copy: `Stream._set_current_event` also sets `stream.current_event`, which the
    take buffer reads, and using it lost one event and answered another twice per batch.
    """

    def run() -> bytes:
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
