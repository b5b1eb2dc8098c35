"""Session fixtures: one real KRaft broker for the whole test session, fresh names per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from workers.kafka_local import BrokerConfig, LocalBroker, free_port
from workers.settings import REPO_ROOT, Settings


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A real Apache Kafka broker on free ports with a temporary data dir, stopped at the end."""
    settings = Settings()
    config = BrokerConfig(
        home=tmp_path_factory.mktemp("kafka"),
        lib=settings.kafka_lib,
        port=free_port(),
        controller_port=free_port(),
        heap="384m",
    )
    broker = LocalBroker(config)
    broker.up(timeout=600)  # waits only as long as the broker needs; CI hosts can be starved
    try:
        yield broker
    finally:
        broker.down()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: LocalBroker) -> str:
    """The test broker's bootstrap address, host:port."""
    return kafka_broker.config.bootstrap


@pytest.fixture
def unique() -> str:
    """A fresh suffix for topic and consumer-group names, so tests never share state."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared MovieLens data folder (../shared/data beside the checkout)."""
    path = Settings().data_dir
    if not path.is_dir():
        pytest.fail(f"shared data folder missing: {path}")
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
