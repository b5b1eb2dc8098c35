"""`llmrec forget`: ask the workers to forget users (the contract's ForgetUser record)."""

from __future__ import annotations

import asyncio
import time
import uuid

import orjson
import typer
from aiokafka import AIOKafkaProducer
from rich.console import Console

from llmrec.events import ForgetUser
from workers.kafka_conn import DURABLE, client_kwargs
from workers.settings import Settings, get_settings
from workers.topic_admin import ensure_topics, topic_names

__all__ = ["forget", "send_forget"]

console = Console(stderr=True, soft_wrap=True)


async def send_forget(settings: Settings, user_ids: list[str]) -> list[ForgetUser]:
    """Send one ForgetUser per user to `events`, keyed by the user: it is applied after every
    event of the user sent before it (same partition)."""
    await ensure_topics(settings)
    records = [
        ForgetUser(type="forget", event_id=f"forget-{uuid.uuid4()}", user_id=u, ts=time.time())
        for u in user_ids
    ]
    producer = AIOKafkaProducer(**client_kwargs(settings), **DURABLE)
    await producer.start()
    try:
        topic = topic_names(settings)["events"]
        for rec in records:
            value = orjson.dumps(rec.model_dump(mode="json"))
            await producer.send_and_wait(topic, value, key=rec.user_id.encode())
    finally:
        await producer.stop()
    return records


def forget(
    user_ids: list[str] = typer.Argument(..., help="The users to forget."),  # noqa: B008
) -> None:
    """Forget users: their state is deleted and their key tombstoned on `recommendations`.

    Events sent for them before this are applied first; a later event starts a new state.
    """
    settings = get_settings()
    sent = asyncio.run(send_forget(settings, user_ids))
    console.print(f"sent {len(sent)} forget request(s) to {topic_names(settings)['events']}")
