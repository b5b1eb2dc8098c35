"""deploy/grafana: every dashboard query parses (promtool) and asks for a metric a worker serves."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import DEPLOY
from tests.deploy.metric_names import referenced, served

DASHBOARD = DEPLOY / "grafana" / "llmrec.json"


def _targets() -> list[tuple[str, str]]:
    dash: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]


def test_every_panel_query_parses(promtool: Path, tmp_path: Path) -> None:
    # promtool has no bare PromQL check; a recording rule per query makes `check rules` parse it.
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, (_, expr) in enumerate(_targets())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        [str(promtool), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_panel_queries_served_metrics() -> None:
    names = served()
    by_panel: dict[str, set[str]] = {}
    for title, expr in _targets():
        used = referenced(expr) | ({"up"} if "up{" in expr else set())
        assert used <= names, f"{title}: not served: {sorted(used - names)}"
        by_panel.setdefault(title, set()).update(used)
    assert all(by_panel.values()), f"panels that show no metric: {by_panel}"


def test_the_latency_panel_draws_the_alerts_objective() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    (slo,) = [
        r["expr"]
        for g in rules["groups"]
        for r in g["rules"]
        if r.get("alert") == "LlmrecLatencyOverSLO"
    ]
    threshold = slo.rsplit(">", 1)[1].strip()
    assert f"vector({threshold})" in [expr for _, expr in _targets()]


@pytest.mark.parametrize(
    "metric",
    [
        "llmrec_events_in_total",
        "llmrec_recommendations_out_total",
        "llmrec_event_to_recommendation_seconds_bucket",
        "llmrec_consumer_lag",
        "llmrec_dlq_total",
        "llmrec_index_items",
        "llmrec_index_searches_total",
        "llmrec_encode_seconds_bucket",
        "llmrec_encode_batch_size_sum",
        "llmrec_parked_events_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ],
)
def test_the_dashboard_shows(metric: str) -> None:
    assert any(metric in referenced(expr) for _, expr in _targets())


def test_provisioned_datasource_is_the_one_the_panels_use() -> None:
    source = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uids = {d["uid"] for d in source["datasources"]}
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert {p["datasource"]["uid"] for p in dash["panels"]} <= uids
