"""deploy/prometheus: the alert rules pass promtool's check and their unit tests, one per alert."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.deploy import DEPLOY
from tests.deploy.metric_names import referenced, served
from workers import metrics

RULES = DEPLOY / "prometheus" / "alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts_test.yml"


def _run(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], input=stdin, capture_output=True, text=True, check=False
    )


def _alerts() -> list[dict[str, str]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def test_alert_rules_pass_promtool_check(promtool: Path) -> None:
    done = _run(promtool, "check", "rules", RULES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in done.stdout


def test_alert_rules_pass_their_unit_tests(promtool: Path) -> None:
    done = _run(promtool, "test", "rules", RULE_TESTS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    doc = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    fired = {
        case["alertname"]
        for test in doc["tests"]
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert fired == {rule["alert"] for rule in _alerts()}


def test_alerts_query_only_served_metrics() -> None:
    names = served()
    for rule in _alerts():
        used = referenced(rule["expr"])
        assert used <= names, f"{rule['alert']}: not served: {sorted(used - names)}"


def test_prometheus_config_passes_promtool_check(promtool: Path) -> None:
    done = _run(promtool, "check", "config", DEPLOY / "prometheus" / "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_served_metrics_pass_promtool_lint(promtool: Path) -> None:
    metrics.DLQ.labels(source="events", kind="schema")  # a labelled family with a child too
    done = _run(promtool, "check", "metrics", stdin=metrics.render().decode())
    assert done.returncode == 0, done.stdout + done.stderr
