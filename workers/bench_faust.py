"""The framework ceiling of `llmrec bench pipeline`: a bare Faust agent that parses each event
and forwards it, in its own process, with the worker's producer and stream settings.

Run by the benchmark as `python -m workers.bench_faust` with the BENCH_* variables below; what
llmrec adds to a Faust worker is measured against what this one moves on the same broker.
"""

from __future__ import annotations

import os
import sys

import faust
import orjson
from faust.types import StreamT

__all__ = ["make_app"]


def make_app(bootstrap: str, app_id: str, source: str, sink: str, datadir: str) -> faust.App:
    """A Faust app with one agent: `source` -> parse the JSON -> `sink`, keyed as it came."""
    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=datadir,
        web_enabled=False,
        # the worker's settings (workers.app), so that the two differ only in what they do
        producer_acks=1,
        producer_linger=0.005,
        stream_buffer_maxsize=4096,
        broker_commit_every=1000,
        key_serializer="raw",
        value_serializer="raw",
    )
    src, dst = app.topic(source, value_type=bytes), app.topic(sink, value_type=bytes)

    @app.agent(src)
    async def forward(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            doc = orjson.loads(event.value)
            await dst.send(key=event.key, value=orjson.dumps(doc))

    return app


if __name__ == "__main__":
    env = os.environ
    app = make_app(
        env["BENCH_BOOTSTRAP"], env["BENCH_APP_ID"], env["BENCH_SOURCE"], env["BENCH_SINK"],
        env["BENCH_DATADIR"],
    )  # fmt: skip
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()
