"""The real Prometheus server (Debian's build) scrapes a live worker, loads the alert rules, and
every dashboard panel's query returns data from what it scraped."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.deploy import DEPLOY
from tests.e2e.conftest import Pipeline
from tests.e2e.helpers import HASHING, chaos_catalogue, start_indexed
from workers.kafka_local import free_port

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.e2e]

DASHBOARD = DEPLOY / "grafana" / "llmrec.json"
# Panels whose series exist only after an event this test does not cause, with the reason.
EMPTY = {
    'sum by (source) (rate(llmrec_dlq_send_failures_total{job="llmrec"}[5m]))': (
        "a child per source appears only when a dead letter cannot be written"
    ),
    'sum by (outcome) (rate(llmrec_park_hops_total{job="llmrec"}[5m]))': (
        "a child per outcome appears only when a parked event is retried"
    ),
}


def _panel_queries() -> list[tuple[str, str]]:
    dash: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]
    # Grafana's variables, should a panel use them, as a dashboard would fill them in.
    return [(t, e.replace("$__rate_interval", "30s").replace("$job", "llmrec")) for t, e in queries]


def _query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        doc = orjson.loads(resp.read())
    assert doc["status"] == "success", doc
    result: list[dict[str, Any]] = doc["data"]["result"]
    return result


@pytest.fixture
def worker(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Pipeline]:
    p = Pipeline(
        kafka_bootstrap, tmp_path / "state", uuid.uuid4().hex[:8], tmp_path / "worker.log",
        HASHING,
    )  # fmt: skip
    items = chaos_catalogue(30)
    try:
        start_indexed(p, items)
        yield p
    finally:
        p.stop()


@pytest.fixture
def prometheus(prometheus_server: Path, worker: Pipeline, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(DEPLOY / "prometheus" / "alerts.yml")],
        "scrape_configs": [
            {
                "job_name": "llmrec",
                "static_configs": [{"targets": [f"127.0.0.1:{worker.worker.web_port}"]}],
            }
        ],
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            str(prometheus_server), f"--config.file={path}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if _query(port, 'up{job="llmrec"} == 1'):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail((tmp_path / "prometheus.log").read_text(errors="replace")[-3000:])
            time.sleep(0.5)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_every_dashboard_panel_returns_data_from_a_scraped_worker(
    worker: Pipeline, prometheus: int
) -> None:
    now = time.time()
    events = [
        {"event_id": f"e{i}", "type": "click", "user_id": f"u{i % 3}", "item_id": f"c{i}",
         "ts": now}
        for i in range(12)
    ]  # fmt: skip
    worker.send_events(events)
    worker.send("events", [(b"u-bad", b"\xff not json")])  # one dead letter: llmrec_dlq_total
    worker.recommendation_for(events[-1]["event_id"])
    time.sleep(6)  # a few scrapes after the last counters moved (rate needs two samples each)

    empty = []
    for title, expr in _panel_queries():
        if not _query(prometheus, expr):
            empty.append((title, expr))
    assert [e for e in empty if e[1] not in EMPTY] == []
    # The expected empties are empty for their stated reason, not because the name is wrong.
    assert sorted(e for _, e in empty) == sorted(EMPTY)

    # The series an operator asks for beside the panels.
    build = _query(prometheus, 'llmrec_build_info{job="llmrec"}')
    assert build[0]["metric"]["encoder"] == "hashing"
    lag = _query(prometheus, 'llmrec_consumer_lag{job="llmrec"}')
    assert lag
    assert all("partition" in s["metric"] for s in lag)
    assert not [s for s in lag if s["metric"]["topic"].endswith("-changelog")]
    fresh = _query(prometheus, 'time() - llmrec_index_last_update_timestamp_seconds{job="llmrec"}')
    assert 0 <= float(fresh[0]["value"][1]) < 600
    rules = orjson.loads(
        urllib.request.urlopen(f"http://127.0.0.1:{prometheus}/api/v1/rules", timeout=5).read()
    )
    loaded = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
    assert "LlmrecLatencyOverSLO" in loaded
    assert worker.get("/livez")[0] == 200
    assert worker.get("/readyz") == (200, {"status": "ready"})
