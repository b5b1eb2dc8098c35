"""deploy/k8s against the Kubernetes schemas (kubernetes-validate, offline), and its wiring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy import DEPLOY
from workers.settings import Settings

K8S = DEPLOY / "k8s"
KUBERNETES = "1.30.0"  # the oldest minor still commonly run; the fields used are older
FILES = sorted([*K8S.glob("*.yaml"), *K8S.glob("examples/*.yaml")])
# The settings the issue asks to be wired, from the config map or the secret.
WIRED = {
    "LLMREC_KAFKA_SECURITY_PROTOCOL",
    "LLMREC_KAFKA_SASL_MECHANISM",
    "LLMREC_KAFKA_USERNAME",
    "LLMREC_KAFKA_PASSWORD",
    "LLMREC_KAFKA_CA_FILE",
    "LLMREC_WEB_TOKEN",
    "LLMREC_WEB_ADVERTISED_URL",
}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _resources() -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for path in FILES for d in _docs(path)}


@pytest.fixture(scope="module")
def resources() -> dict[tuple[str, str], dict[str, Any]]:
    return _resources()


@pytest.fixture(scope="module")
def worker(resources: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = resources["StatefulSet", "llmrec"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(K8S)))
def test_manifests_match_the_kubernetes_schemas(path: Path) -> None:
    docs = _docs(path)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_the_schema_check_refuses_a_misspelt_field(
    resources: dict[tuple[str, str], dict[str, Any]],
) -> None:
    pdb = resources["PodDisruptionBudget", "llmrec"]
    broken = {**pdb, "spec": {**pdb["spec"], "maxUnavailabel": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_worker_environment_names_real_settings(
    resources: dict[tuple[str, str], dict[str, Any]], worker: dict[str, Any]
) -> None:
    config = resources["ConfigMap", "llmrec"]["data"]
    env = {e["name"] for e in worker["env"]} - {"POD_NAME"}
    fields = {f"LLMREC_{f.upper()}" for f in Settings.model_fields}
    assert set(config) | env <= fields, sorted((set(config) | env) - fields)
    assert set(config) | env >= WIRED, sorted(WIRED - set(config) - env)

    # The whole environment of pod llmrec-0, with the example secret, passes the validators.
    secret = resources["Secret", "llmrec"]["stringData"]
    values = dict(config)
    for e in worker["env"]:
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        values[e["name"]] = secret[ref["key"]] if ref else e.get("value")
    values = {k: v.replace("$(POD_NAME)", "llmrec-0") for k, v in values.items() if v}
    settings = Settings(**{k.removeprefix("LLMREC_").lower(): v for k, v in values.items()})
    assert settings.web_advertised_url == "http://llmrec-0.llmrec:6066"


def test_secret_references_exist(
    resources: dict[tuple[str, str], dict[str, Any]], worker: dict[str, Any]
) -> None:
    secret = resources["Secret", "llmrec"]["stringData"]
    refs = {e["valueFrom"]["secretKeyRef"]["key"] for e in worker["env"] if "valueFrom" in e
            and "secretKeyRef" in e["valueFrom"]}  # fmt: skip
    volumes = resources["StatefulSet", "llmrec"]["spec"]["template"]["spec"]["volumes"]
    refs |= {i["key"] for v in volumes if "secret" in v for i in v["secret"]["items"]}
    assert refs
    assert refs <= set(secret)
    assert {c["configMapRef"]["name"] for c in worker["envFrom"]} == {"llmrec"}


def test_state_dir_and_ca_file_are_mounted(
    resources: dict[tuple[str, str], dict[str, Any]], worker: dict[str, Any]
) -> None:
    config = resources["ConfigMap", "llmrec"]["data"]
    mounts = {m["name"]: m["mountPath"] for m in worker["volumeMounts"]}
    claims = resources["StatefulSet", "llmrec"]["spec"]["volumeClaimTemplates"]
    assert mounts[claims[0]["metadata"]["name"]] == config["LLMREC_STATE_DIR"]
    assert Path(config["LLMREC_KAFKA_CA_FILE"]).parent == Path(mounts["kafka-ca"])


def test_probes_scraping_and_selectors(
    resources: dict[tuple[str, str], dict[str, Any]], worker: dict[str, Any]
) -> None:
    sts = resources["StatefulSet", "llmrec"]
    pod = sts["spec"]["template"]
    assert worker["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert worker["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    port = resources["ConfigMap", "llmrec"]["data"]["LLMREC_WEB_PORT"]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == port
    assert worker["ports"][0]["containerPort"] == int(port)
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    labels = pod["metadata"]["labels"]
    assert resources["Service", sts["spec"]["serviceName"]]["spec"]["clusterIP"] == "None"
    for kind, name in [("Service", "llmrec"), ("Service", "llmrec-web")]:
        assert resources[kind, name]["spec"]["selector"].items() <= labels.items()
    pdb = resources["PodDisruptionBudget", "llmrec"]["spec"]["selector"]["matchLabels"]
    assert pdb.items() <= labels.items()
