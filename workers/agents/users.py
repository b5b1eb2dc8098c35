"""User path: events -> user state (table) -> recommendations topic.

An event whose Kafka key is not its user_id is re-keyed through `events-by-user`, so a user's
state is always written by the agent that owns the user's partition. The logic is the Engine's;
this module only parses, routes, reads and writes the table, and publishes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import replace

from faust.types import EventT, StreamT

from llmrec.events import (
    Event,
    ForgetUser,
    Recommendation,
    RecommendedItem,
    future_skew,
    parse_event,
    parse_user_record,
)
from llmrec.exceptions import InvalidRecordError
from llmrec.privacy import pseudonymise
from llmrec.shared_stats import StatsUpdate, pack_updates
from llmrec.types import Vector
from workers import metrics, topics
from workers.agents.batches import waiting
from workers.agents.context import as_of
from workers.agents.itemstats import item_partition
from workers.agents.parking import Ticket, Verdict, verdict
from workers.agents.runtime import Runtime
from workers.app import app
from workers.dlq import dead_letter, dead_letter_event, dead_letter_failure
from workers.tables import user_state

__all__ = [
    "admit",
    "events_agent",
    "events_by_user_agent",
    "fold_events",
    "forget",
    "handle",
    "park",
    "parked_agent",
    "retry_parked",
    "send_updates",
]

log = logging.getLogger(__name__)

_PARK_POLL_S = 0.1  # how often a waiting parked event looks at the index again


async def admit(
    rt: Runtime, event: EventT[bytes], *, keyed_by_user: bool
) -> Event | ForgetUser | None:
    """Validate one record and route it: the record when this agent applies it, else None
    (sent to the DLQ, re-keyed to its user's partition, or parked for an unknown item).

    Never raises: whatever goes wrong with one record sends that record to the DLQ and no other.
    """
    try:
        return await _admit(rt, event, keyed_by_user=keyed_by_user)
    except Exception as exc:
        log.error("could not admit a record: %s", type(exc).__name__, exc_info=True)
        await dead_letter_failure(topics.events_dlq, event, exc)
        return None


async def _admit(
    rt: Runtime, event: EventT[bytes], *, keyed_by_user: bool
) -> Event | ForgetUser | None:
    msg = event.message
    raw = msg.value or b""
    try:
        ev = parse_user_record(raw)
    except InvalidRecordError as exc:
        await dead_letter_event(topics.events_dlq, event, exc.reason, "invalid")
        return None
    skewed = future_skew(ev.ts, time.time(), rt.settings.max_future_skew_s)
    if skewed is not None:
        await dead_letter_event(topics.events_dlq, event, skewed, "invalid")
        return None
    if not keyed_by_user and msg.key != ev.user_id.encode():
        metrics.REROUTED.inc()
        await topics.events_by_user.send(key=ev.user_id.encode(), value=msg.value)
        return None
    if rt.user_id_key is not None:  # past here only the pseudonym is known
        ev = ev.model_copy(update={"user_id": pseudonymise(ev.user_id, rt.user_id_key)})
    if isinstance(ev, ForgetUser):
        return ev
    if not rt.engine.knows_item(ev.item_id):
        await park(ev, event)
        return None
    return ev


async def park(ev: Event, event: EventT[bytes]) -> None:
    """Send an event whose item is unknown to `events-parked` (keeps its first park time)."""
    msg = event.message
    now = time.time()
    carried = Ticket.from_headers(msg.headers)
    ticket = carried[0] if carried else Ticket(now, msg.topic, msg.partition, msg.offset)
    if carried is None:
        metrics.PARKED.inc()
    await topics.events_parked.send(
        key=ev.user_id.encode(), value=msg.value, headers=ticket.headers(hop_at=now)
    )


async def retry_parked(rt: Runtime, event: EventT[bytes]) -> None:
    """One parked event's hop: wait for its item (at most `park_retry_s`), then release it to
    its user, park it again, or dead-letter it after `park_timeout_s`. Never raises."""
    msg = event.message
    s = rt.settings
    try:
        ev = parse_event(msg.value or b"")
        carried = Ticket.from_headers(msg.headers)
        ticket, hop_at = carried or (
            Ticket(msg.timestamp, msg.topic, msg.partition, msg.offset),
            msg.timestamp,
        )
        while True:
            what, wait = verdict(
                known=rt.engine.knows_item(ev.item_id), now=time.time(), hop_at=hop_at,
                parked_at=ticket.parked_at, retry_s=s.park_retry_s, timeout_s=s.park_timeout_s,
            )  # fmt: skip
            if what is not Verdict.WAIT:
                break
            await asyncio.sleep(min(wait, _PARK_POLL_S))
        metrics.PARK_HOPS.labels(outcome=what.value).inc()
        if what is Verdict.RELEASE:
            await topics.events_by_user.send(
                key=ev.user_id.encode(), value=msg.value, headers=ticket.headers(time.time())
            )
        elif what is Verdict.REQUEUE:
            await topics.events_parked.send(
                key=msg.key, value=msg.value, headers=ticket.headers(time.time())
            )
        else:
            await dead_letter(
                topics.events_dlq, msg.value, msg.key,
                f"item {ev.item_id!r} not indexed within {s.park_timeout_s:.0f} s",
                "unknown_item", topic=ticket.topic, partition=ticket.partition,
                offset=ticket.offset,
            )  # fmt: skip
    except Exception as exc:
        log.error("could not retry a parked record: %s", type(exc).__name__, exc_info=True)
        await dead_letter_failure(topics.events_dlq, event, exc)


async def handle(
    rt: Runtime,
    batch: Sequence[EventT[bytes]],
    *,
    keyed_by_user: bool,
) -> None:
    """Admit a micro-batch, then answer each user's run of events with one recommendation.

    A user's events in the batch are folded in arrival order (one partition, so in order) and
    recommended for once: at high rates this saves most `recommend` calls, and every user's
    candidates are ranked in one batched call; at low rates a batch holds one event, answered
    without waiting for others (`workers.agents.batches`).
    """
    runs: dict[str, list[tuple[Event, EventT[bytes]]]] = {}
    forgotten: dict[str, EventT[bytes]] = {}
    with metrics.stage("admit"):
        for event in batch:
            ev = await admit(rt, event, keyed_by_user=keyed_by_user)
            if isinstance(ev, ForgetUser):
                runs.pop(ev.user_id, None)  # the user's events before it are not applied
                forgotten[ev.user_id] = event
            elif ev is not None:
                runs.setdefault(ev.user_id, []).append((ev, event))
    if forgotten:  # before the fold: a user's events after the forget start afresh
        await forget(forgotten)
    with metrics.stage("encode"):
        vectors = _encode_texts(rt, [ev for run in runs.values() for ev, _ in run])
    folded: list[tuple[list[tuple[Event, EventT[bytes]]], bytes]] = []
    updates: list[StatsUpdate] = []
    with metrics.stage("fold"):
        for run in runs.values():
            events = [ev for ev, _ in run]
            vecs = [vectors.get(id(ev)) for ev in events] if vectors is not None else None
            try:
                sent_at = [event.message.timestamp for _, event in run]
                state, made = as_of(run[-1][1], fold_events, rt, events, vecs, sent_at)
            except Exception as exc:  # a bug must not kill the agent: DLQ the run, loudly
                log.exception("failed to apply %d events of one user", len(run))
                await _dead_letter_run(run, exc)
                continue
            folded.append((run, state))
            updates += made
    with metrics.stage("stats_send"):
        await send_updates(rt, updates)
    recs = _recommend_all(rt, folded)
    with metrics.stage("publish"):
        await _publish(folded, recs)


async def forget(users: dict[str, EventT[bytes]]) -> None:
    """Delete each user's state (a tombstone on the changelog) and tombstone the user's key on
    `recommendations`. A failure costs that user's request only: it goes to the DLQ."""
    for user_id, event in users.items():
        key = user_id.encode()
        try:
            as_of(event, _delete_state, key)  # the changelog tombstone takes the event's partition
            await topics.recommendations.send(key=key, value=None)
        except Exception as exc:
            log.error("could not forget a user: %s", type(exc).__name__, exc_info=True)
            await dead_letter_failure(topics.events_dlq, event, exc)
            continue
        metrics.FORGOTTEN.inc()


def _delete_state(key: bytes) -> None:
    if user_state.get(key) is not None:
        del user_state[key]


async def _publish(
    folded: Sequence[tuple[Sequence[tuple[Event, EventT[bytes]]], bytes]],
    recs: Sequence[Recommendation | Exception],
) -> None:
    """Publish each user's list; a failed send costs that user's run only."""
    for (run, _), rec in zip(folded, recs, strict=True):
        if isinstance(rec, Exception):
            await _dead_letter_run(run, rec)
            continue
        user_key = run[-1][0].user_id.encode()
        try:
            await topics.recommendations.send(key=user_key, value=rec.model_dump_json().encode())
        except Exception as exc:  # costs this user's run only
            log.error("could not publish a list: %s", type(exc).__name__, exc_info=True)
            await _dead_letter_run(run, exc)
            continue
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
    rt: Runtime,
    events: Sequence[Event],
    vectors: Sequence[Vector | None] | None = None,
    sent_at: Sequence[float] | None = None,
) -> tuple[bytes, list[StatsUpdate]]:
    """Fold `events` (one user's, in order) into the user's state and assign it back to the
    table; returns the state and the statistics updates to send to the items' owners.
    `vectors` are the texts already encoded, else they are encoded here in one call;
    `sent_at` the events' Kafka timestamps (carried by the updates, for the effect latency)."""
    user_key = events[0].user_id.encode()
    state: bytes | None = user_state.get(user_key)
    new = b""
    updates: list[StatsUpdate] = []
    vecs = vectors if vectors is not None else rt.engine.encode_texts(events)
    times = sent_at if sent_at is not None else [0.0] * len(events)
    for ev, vec, at in zip(events, vecs, times, strict=True):
        new, update = rt.engine.observe_update(state, ev, text_vec=vec)
        if update is None:
            metrics.DUPLICATES.inc()  # redelivered after a crash: answered again, applied once
        else:
            updates.append(replace(update, event_at=at))
        state = new
    user_state[user_key] = new
    return new, updates


async def send_updates(rt: Runtime, updates: Sequence[StatsUpdate]) -> None:
    """Send the updates to their items' owners: one bundle per `item-updates` partition. A
    failed send costs that bundle only (the statistics miss its events; their lists are out)."""
    bundles: dict[int, list[StatsUpdate]] = {}
    for u in updates:
        bundles.setdefault(item_partition(u.item_id, rt.settings.partitions), []).append(u)
    for partition, bundle in bundles.items():
        try:
            await topics.item_updates.send(value=pack_updates(bundle), partition=partition)
        except Exception as exc:
            metrics.STATS_SEND_FAILURES.inc(len(bundle))
            log.error("could not send statistics updates: %s", type(exc).__name__)


def _recommend_all(
    rt: Runtime, folded: Sequence[tuple[Sequence[tuple[Event, EventT[bytes]]], bytes]]
) -> list[Recommendation | Exception]:
    """One list per folded user, ranked in one batched call; if the batch fails, user by user,
    so that a failure costs only the user it belongs to."""
    requests = [(state, run[-1][0].ts, ()) for run, state in folded]
    k = rt.settings.recommend_k
    engine = rt.engine
    lists: list[list[RecommendedItem] | Exception]
    try:
        with metrics.stage("retrieve"):
            gathered = engine.gather(requests)
        with metrics.stage("rank"):
            scores = engine.score_batch(gathered)
        with metrics.stage("rerank"):
            lists = list(engine.lists(gathered, scores, k))
    except Exception:
        log.exception("batched recommend failed; retrying user by user")
        lists = []
        for req in requests:
            try:
                lists.append(engine.recommend_batch([req], k)[0])
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


async def _consume(stream: StreamT[bytes], *, keyed_by_user: bool) -> None:
    rt = await Runtime.get()
    s = rt.settings
    async for batch in waiting(stream, s.event_batch_size, s.event_batch_within_s):
        await handle(rt, batch, keyed_by_user=keyed_by_user)


@app.agent(topics.events)
async def events_agent(stream: StreamT[bytes]) -> None:
    await _consume(stream, keyed_by_user=False)


@app.agent(topics.events_by_user)
async def events_by_user_agent(stream: StreamT[bytes]) -> None:
    await _consume(stream, keyed_by_user=True)


@app.agent(topics.events_parked)
async def parked_agent(stream: StreamT[bytes]) -> None:
    rt = await Runtime.get()
    async for event in stream.events():
        await retry_parked(rt, event)
