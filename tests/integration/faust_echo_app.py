"""A minimal real Faust app for the integration test: reads one topic, writes another.

Configured from the environment so the test can point it at its broker and fresh topic names.
"""

from __future__ import annotations

import os

import faust

app = faust.App(
    os.environ["ECHO_APP_ID"],
    broker=f"kafka://{os.environ['ECHO_BOOTSTRAP']}",
    store="memory://",
    web_enabled=False,
    topic_partitions=1,
    consumer_auto_offset_reset="earliest",
)
source = app.topic(os.environ["ECHO_IN"], value_serializer="json")
sink = app.topic(os.environ["ECHO_OUT"], value_serializer="json")


@app.agent(source)
async def echo(stream: faust.StreamT[dict[str, object]]) -> None:
    async for key, value in stream.items():
        await sink.send(key=key, value={"echo": value, "by": "faust"})
