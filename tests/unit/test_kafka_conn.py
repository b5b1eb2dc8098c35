"""Kafka connection and durability settings, without a broker."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from llmrec.exceptions import BrokerError
from workers import kafka_conn
from workers.settings import Settings
from workers.topic_admin import settle_durability, topic_configs


def test_plaintext_clients_get_only_the_address() -> None:
    kw = kafka_conn.client_kwargs(Settings(bootstrap_servers="k1:9092,k2:9092"))
    assert kw == {"bootstrap_servers": "k1:9092,k2:9092", "security_protocol": "PLAINTEXT"}
    assert kafka_conn.faust_credentials(Settings()) is None


def test_sasl_ssl_clients_get_credentials_and_a_verifying_context() -> None:
    s = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_username="svc",
        kafka_password=SecretStr("pw"),
    )
    kw = kafka_conn.client_kwargs(s)
    assert kw["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (kw["sasl_plain_username"], kw["sasl_plain_password"]) == ("svc", "pw")
    assert kw["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert kw["ssl_context"].check_hostname
    creds = kafka_conn.faust_credentials(s)
    assert creds.protocol.value == "SASL_SSL"
    assert creds.mechanism.value == "SCRAM-SHA-256"
    assert "pw" not in repr(s)  # SecretStr: the password never reaches a log line


def test_incomplete_security_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="LLMREC_KAFKA_USERNAME"):
        Settings(kafka_security_protocol="SASL_PLAINTEXT")
    with pytest.raises(ValidationError, match="go together"):
        Settings(kafka_cert_file=Path("/c.pem"))
    with pytest.raises(ValidationError, match="cannot exceed"):
        Settings(replication_factor=2, min_insync_replicas=3)


def test_missing_tls_file_is_named(tmp_path: Path) -> None:
    s = Settings(kafka_security_protocol="SSL", kafka_ca_file=tmp_path / "nope.pem")
    with pytest.raises(BrokerError, match="LLMREC_KAFKA_CA_FILE"):
        kafka_conn.client_kwargs(s)


@pytest.mark.parametrize(("brokers", "rf", "isr"), [(1, 1, 1), (2, 2, 1), (3, 3, 2), (7, 3, 2)])
def test_durability_follows_the_cluster_size(brokers: int, rf: int, isr: int) -> None:
    s = Settings()
    settle_durability(s, brokers)
    assert (s.replication_factor, s.min_insync_replicas) == (rf, isr)


def test_explicit_durability_is_kept_or_refused() -> None:
    s = Settings(replication_factor=2, min_insync_replicas=2)
    settle_durability(s, 5)
    assert (s.replication_factor, s.min_insync_replicas) == (2, 2)
    with pytest.raises(BrokerError, match="1 broker"):
        settle_durability(Settings(replication_factor=3), 1)


def test_topic_configs() -> None:
    s = Settings(dlq_retention_ms=3_600_000)
    settle_durability(s, 3)
    assert topic_configs(s, "items") == {"cleanup.policy": "compact", "min.insync.replicas": "2"}
    assert topic_configs(s, "events_dlq") == {
        "retention.ms": "3600000",
        "min.insync.replicas": "2",
    }
