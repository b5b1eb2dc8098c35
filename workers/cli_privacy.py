"""`llmrec forget`: ask the workers to forget users (the contract's ForgetUser record)."""

from __future__ import annotations

import asyncio
from typing import Any

import typer
from rich.console import Console

from llmrec import client
from workers.kafka_conn import client_kwargs
from workers.settings import Settings, get_settings
from workers.topic_admin import ensure_topics, topic_names

__all__ = ["forget", "send_forget"]

console = Console(stderr=True, soft_wrap=True)


async def send_forget(settings: Settings, user_ids: list[str]) -> list[dict[str, Any]]:
    """Send one ForgetUser per user to `events`, keyed by the user (`llmrec.client`): it is
    applied after every event of the user sent before it (same partition)."""
    await ensure_topics(settings)
    records = [client.forget(u) for u in user_ids]
    kafka = client_kwargs(settings)
    async with client.Producer(
        kafka.pop("bootstrap_servers"), topic_prefix=settings.topic_prefix, **kafka
    ) as producer:
        for rec in records:
            await producer.send_event(rec)
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
