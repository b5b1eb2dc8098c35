"""A worker and the CLI against a broker that only lets in TLS + SASL (SCRAM) clients.

The broker is the project's own local KRaft broker with a SASL_SSL listener: the test makes its
CA and broker certificate (`workers.kafka_tls`, the JDK's keytool) and a SCRAM user. Every
client here speaks to that listener only.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from llmrec.exceptions import BrokerError
from tests.e2e.conftest import Pipeline
from tests.e2e.helpers import HASHING, chaos_catalogue, start_indexed
from workers import kafka_conn
from workers.kafka_local import BrokerConfig, LocalBroker, SecureListener, free_port
from workers.kafka_tls import LocalTls, make_local_tls
from workers.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.slow]

USER, PASSWORD = "llmrec-svc", "s3cret-Pa55"
LLMREC = Path(sys.executable).with_name("llmrec")


class Secured:
    def __init__(self, broker: LocalBroker, tls: LocalTls, other_ca: Path) -> None:
        assert broker.config.secure is not None
        self.bootstrap = f"127.0.0.1:{broker.config.secure.port}"
        self.tls, self.other_ca = tls, other_ca

    def env(self, password: str = PASSWORD, mechanism: str = "SCRAM-SHA-512") -> dict[str, str]:
        return {
            "LLMREC_BOOTSTRAP_SERVERS": self.bootstrap,
            "LLMREC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "LLMREC_KAFKA_SASL_MECHANISM": mechanism,
            "LLMREC_KAFKA_USERNAME": USER,
            "LLMREC_KAFKA_PASSWORD": password,
            "LLMREC_KAFKA_CA_FILE": str(self.tls.ca_pem),
        }

    def settings(self, **update: object) -> Settings:
        base = Settings(
            bootstrap_servers=self.bootstrap,
            kafka_security_protocol="SASL_SSL",
            kafka_username=USER,
            kafka_password=SecretStr(PASSWORD),
            kafka_ca_file=self.tls.ca_pem,
        )
        return base.model_copy(update=update)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    root = tmp_path_factory.mktemp("secured-kafka")
    tls = make_local_tls(root / "tls", "keystore-pass")
    other = make_local_tls(root / "other-ca", "keystore-pass", name="stranger")
    listener = SecureListener(
        port=free_port(), keystore=tls.keystore, keystore_password=tls.password,
        users=((USER, PASSWORD),),
    )  # fmt: skip
    broker = LocalBroker(
        BrokerConfig(
            home=root / "kafka", lib=Settings().kafka_lib, port=free_port(),
            controller_port=free_port(), heap="384m", secure=listener,
        )
    )  # fmt: skip
    broker.up(timeout=600)
    try:
        yield Secured(broker, tls, other.ca_pem)
    finally:
        broker.down()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_every_mechanism_is_let_in(secured: Secured, mechanism: str) -> None:
    asyncio.run(kafka_conn.probe(secured.settings(kafka_sasl_mechanism=mechanism), 30))


def test_refusals_are_named(secured: Secured) -> None:
    wrong = secured.settings(kafka_password=SecretStr("not-it"))
    with pytest.raises(BrokerError, match="authentication failed"):
        asyncio.run(kafka_conn.probe(wrong, 30))
    stranger = secured.settings(kafka_ca_file=secured.other_ca)
    with pytest.raises(BrokerError, match="certificate was not trusted"):
        asyncio.run(kafka_conn.probe(stranger, 30))
    plaintext = secured.settings(kafka_security_protocol="PLAINTEXT")
    with pytest.raises(BrokerError, match="does not answer as Kafka over PLAINTEXT"):
        asyncio.run(kafka_conn.probe(plaintext, 2))


def _run(args: list[str], env: dict[str, str], timeout: float = 90) -> tuple[int, list[str]]:
    done = subprocess.run(
        [str(LLMREC), *args], env={**os.environ, **env}, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    return done.returncode, [ln for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]


@pytest.mark.parametrize(
    "args",
    [
        ["worker"],
        ["produce", "--event", '{"event_id": "e1", "type": "view", "user_id": "u", '
         '"item_id": "i", "ts": 1700000000}'],
    ],
    ids=["worker", "produce"],
)  # fmt: skip
def test_wrong_password_is_one_clear_line(
    secured: Secured, args: list[str], tmp_path: Path
) -> None:
    env = {**secured.env(password="not-it"), "LLMREC_STATE_DIR": str(tmp_path)}
    started = time.monotonic()
    code, lines = _run(args, env)
    assert code != 0
    assert len(lines) == 1, lines
    assert "authentication failed" in lines[0]
    assert secured.bootstrap in lines[0]
    assert time.monotonic() - started < 30, "a refusal should not be retried until a timeout"


def test_worker_serves_recommendations_through_sasl_ssl(secured: Secured, tmp_path: Path) -> None:
    p = Pipeline(
        secured.bootstrap, tmp_path / "state", os.urandom(4).hex(), tmp_path / "worker.log",
        {**secured.env(), **HASHING},
    )  # fmt: skip
    catalogue = chaos_catalogue(60)
    try:
        start_indexed(p, catalogue)
        events = [
            {"event_id": f"sec-{n}", "type": "purchase", "user_id": "secure-user",
             "item_id": f"c{n * 6}", "rating": 5.0, "ts": time.time() - 60 + n}
            for n in range(5)
        ]  # fmt: skip
        p.send_events(events)
        rec = p.recommendation_for("sec-4", timeout=120)
        assert rec["user_id"] == "secure-user"
        assert len(rec["items"]) == 10
        assert not {i["item_id"] for i in rec["items"]} & {e["item_id"] for e in events}
    finally:
        p.stop()
