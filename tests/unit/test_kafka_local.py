"""LocalBroker's refusals that need no broker: missing tools, and the status of an empty home."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmrec.exceptions import BrokerError
from workers.kafka_local import BrokerConfig, LocalBroker, free_port, kafka_answers


def _broker(tmp_path: Path, lib: Path | None = None) -> LocalBroker:
    return LocalBroker(
        BrokerConfig(
            home=tmp_path / "home",
            lib=lib or tmp_path / "lib",
            port=free_port(),
            controller_port=free_port(),
        )
    )


def test_missing_java_is_refused_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerError, match="`java` not found"):
        _broker(tmp_path).up(timeout=1)


def test_missing_maven_is_refused_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerError, match="`mvn` not found"):
        _broker(tmp_path).ensure_jars()


def test_status_of_a_fresh_home_is_down(tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    status = broker.status()
    assert (status.running, status.answering, status.pid) == (False, False, None)
    assert "down" in status.describe()
    assert broker.down() is False


def test_stale_pid_file_is_not_trusted(tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    broker.home.mkdir(parents=True)
    (broker.home / "broker.pid").write_text("1\n")  # pid 1 is alive but is not our broker
    assert broker.pid() is None


def test_nothing_listening_does_not_answer() -> None:
    assert kafka_answers("127.0.0.1", free_port(), timeout=0.5) is False


def test_cluster_ids_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # uuid bytes whose base64 starts with "-" (0xf8...) come first; the id must be redrawn.
    import uuid as uuid_mod

    from workers import kafka_local

    draws = iter([uuid_mod.UUID(bytes=b"\xf8" + b"\x00" * 15), uuid_mod.UUID(int=12345)])
    monkeypatch.setattr(kafka_local.uuid, "uuid4", lambda: next(draws))
    cid = kafka_local._cluster_id()
    assert not cid.startswith("-")
    assert len(cid) == 22
