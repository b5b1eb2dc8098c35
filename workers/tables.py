"""The user-state table: user_id -> compact interest-state bytes (`llmrec.interests`).

Changelog-backed, RocksDB on disk when `rocksdict` is installed. Partitions equal the
partitions of `events` and `events-by-user`, which co-partition it: only the agent that owns a
user's partition writes that user's state.
"""

from __future__ import annotations

from workers.app import app
from workers.settings import get_settings

__all__ = ["user_state"]

user_state = app.Table(
    "user-state",
    default=None,
    key_type=bytes,
    value_type=bytes,
    partitions=get_settings().partitions,
    help="Per-user interest state (llmrec.interests.UserState bytes).",
)
