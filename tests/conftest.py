"""Fixtures: one real embedded broker for the session, unique topics per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from services.common.broker import EmbeddedBroker, free_port
from services.common.kafka import KafkaSettings


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """The embedded broker every streaming test shares (topics are unique per test)."""
    log_path = Path(tmp_path_factory.mktemp("broker")) / "broker.log"
    embedded = EmbeddedBroker(port=free_port(), log_path=log_path)
    embedded.start()
    yield embedded
    embedded.stop()


@pytest.fixture
def kafka(broker: EmbeddedBroker) -> KafkaSettings:
    """Settings that point at the session broker with a topic prefix of this test's own."""
    return KafkaSettings(bootstrap=broker.bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:12]}.")


@pytest.fixture
async def own_broker(tmp_path: Path) -> AsyncIterator[EmbeddedBroker]:
    """A broker of this test's own, for tests that stop and restart it."""
    embedded = EmbeddedBroker(port=free_port(), log_path=tmp_path / "broker.log")
    embedded.start()
    yield embedded
    embedded.stop()
