"""deploy/compose.yaml against the Compose Specification's JSON Schema, and its wiring."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from jsonschema import Draft201909Validator

from tests.deploy import DEPLOY
from workers.settings import Settings

COMPOSE = DEPLOY / "compose.yaml"
WORKERS = ("worker-0", "worker-1")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return doc


def _errors(schema: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    # The schema says draft 2019-09 (with a `$schema` URI jsonschema does not recognise).
    return [f"{list(e.absolute_path)}: {e.message}" for e in
            Draft201909Validator(schema).iter_errors(doc)]  # fmt: skip


def test_compose_file_matches_the_compose_specification(
    compose: dict[str, Any], compose_schema: dict[str, Any]
) -> None:
    assert _errors(compose_schema, compose) == []


def test_the_schema_check_refuses_a_misspelt_key(
    compose: dict[str, Any], compose_schema: dict[str, Any]
) -> None:
    broken = {**compose, "services": {**compose["services"], "oops": {"image": "x", "port": []}}}
    assert _errors(compose_schema, broken)


def test_services_are_kafka_two_workers_prometheus_grafana(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"kafka", *WORKERS, "prometheus", "grafana"}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


@pytest.mark.parametrize("name", WORKERS)
def test_worker_settings_are_real_and_distinct(compose: dict[str, Any], name: str) -> None:
    env: dict[str, str] = compose["services"][name]["environment"]
    fields = {f"LLMREC_{f.upper()}" for f in Settings.model_fields}
    assert set(env) <= fields, sorted(set(env) - fields)
    assert env["LLMREC_WORKER_ID"] == name
    assert env["LLMREC_WEB_ADVERTISED_URL"] == f"http://{name}:{env['LLMREC_WEB_PORT']}"
    # the environment is valid settings (the validators accept it)
    Settings(**{k.removeprefix("LLMREC_").lower(): v for k, v in env.items()})


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), volume


def test_prometheus_scrapes_every_worker(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "llmrec"]
    targets = {t for c in job["static_configs"] for t in c["targets"]}
    ports = {compose["services"][w]["environment"]["LLMREC_WEB_PORT"] for w in WORKERS}
    assert targets == {f"{w}:{p}" for w in WORKERS for p in ports}
