"""Broker kill -9 and restart; a damaged index snapshot; what a restart keeps."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Pipeline
from tests.e2e.helpers import HASHING, chaos_catalogue, start_indexed, wait_indexed
from workers.kafka_local import BrokerConfig, LocalBroker, free_port
from workers.settings import Settings

pytestmark = [pytest.mark.chaos, pytest.mark.kafka, pytest.mark.slow]

NOW = time.time() - 3600


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker of this test's own, so killing it disturbs no other test."""
    config = BrokerConfig(
        home=tmp_path / "kafka", lib=Settings().kafka_lib, port=free_port(),
        controller_port=free_port(), heap="384m",
    )  # fmt: skip
    broker = LocalBroker(config)
    broker.up(timeout=600)
    try:
        yield broker
    finally:
        broker.down()


def _wait(check: Callable[[], bool], timeout: float, what: str, p: Pipeline) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            pytest.fail(f"{what} not within {timeout:.0f} s: {p.health()} {p.log_tail()}")
        time.sleep(0.1)
    return time.monotonic() - started


def _error_lines(log: str) -> int:
    return sum(" ERROR " in line or "[ERROR]" in line for line in log.splitlines())


def test_broker_kill_9_and_restart_heals_the_worker(
    own_broker: LocalBroker, make_pipeline: Callable[..., Pipeline]
) -> None:
    p = make_pipeline(HASHING, bootstrap=own_broker.config.bootstrap)
    catalogue = chaos_catalogue(30)
    start_indexed(p, catalogue)
    errors_before = _error_lines(p.worker.log_path.read_text(errors="replace"))

    pid = own_broker.pid()
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)
    noticed = _wait(lambda: p.health()[0] == 503, 30, "/health to report the lost broker", p)
    doc = p.health()[1]
    assert doc["broker_reachable"] is False
    time.sleep(10)  # an outage long enough for clients to retry, log and back off
    outage_s = noticed + 10
    log = p.worker.log_path.read_text(errors="replace")
    errors = _error_lines(log) - errors_before

    own_broker.up(timeout=600)
    healed = _wait(lambda: p.health()[0] == 200, 120, "/health to recover", p)
    p.send_items([{"item_id": "after-outage", "title": "Sent after the broker came back"}])
    indexed = _wait(
        lambda: p.get("/items/after-outage/similar?k=3")[0] == 200, 120,
        "an item sent after the restart to be indexed", p,
    )  # fmt: skip
    print(
        f"\nbroker kill -9: /health said 503 after {noticed:.1f} s; {errors} ERROR lines in "
        f"{outage_s:.0f} s of outage ({errors / outage_s:.1f}/s); healthy {healed:.1f} s after "
        f"the broker restarted; a new item indexed {indexed:.1f} s later"
    )
    assert noticed < 15.0, f"/health took {noticed:.1f} s to notice (target 2 s)"
    assert errors / outage_s < 20, f"the log flooded: {errors} ERROR lines in {outage_s:.0f} s"


def test_damaged_snapshot_is_discarded_and_rebuilt(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(HASHING)
    catalogue = chaos_catalogue(60)
    start_indexed(p, catalogue)
    p.send_events(
        [
            {"event_id": f"pop-{k}", "type": "purchase", "user_id": f"buyer-{k}",
             "item_id": "c7", "ts": NOW + k}
            for k in range(5)
        ]
    )  # fmt: skip
    p.recommendation_for("pop-4")
    p.stop()  # a clean stop writes the snapshot
    snap = Path(p.worker.env["LLMREC_STATE_DIR"]) / "index"
    graph = snap / "graph.bin"
    assert graph.exists(), f"no snapshot written: {sorted(snap.parent.rglob('*'))[:20]}"
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 3])  # truncated

    p.start()
    wait_indexed(p, len(catalogue))
    # The purchases' statistics may still have been on their way through `item-updates` when
    # the worker stopped: they are folded and replicated after the restart, not lost.
    deadline = time.monotonic() + 60
    while True:
        status, doc = p.get("/users/someone-brand-new/recommendations?k=10")
        assert status == 200
        ids = [i["item_id"] for i in doc["items"]]
        assert ids, "a brand-new user got an empty list after a restart"
        if "c7" in ids:
            break
        assert time.monotonic() < deadline, f"popularity did not survive the restart: {ids}"
        time.sleep(0.3)
