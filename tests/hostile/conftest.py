"""Real ingest and router processes on the session broker, shared by the hostile-input tests of
one module (each module gets its own topic prefix and consumer group)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.broker import EmbeddedBroker
from services.common.kafka import KafkaSettings, ensure_topics
from services.common.topics import ALL_TOPICS
from tests.support.process import ServiceProcess

SUPERVISOR_TOKEN = "dev-kate"
AGENT_TOKEN = "dev-dan"
OTHER_AGENT_TOKEN = "dev-eva"


def service_env(kafka: KafkaSettings, **variables: str) -> dict[str, str]:
    """The environment of a service process on ``kafka``, with extra variables."""
    return {
        **os.environ,
        "TRIAGE_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "TRIAGE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        **variables,
    }


@pytest.fixture(scope="module")
def module_kafka(broker: EmbeddedBroker) -> KafkaSettings:
    """Settings for the session broker with a topic prefix of this module's own."""
    return KafkaSettings(bootstrap=broker.bootstrap, topic_prefix=f"h{uuid.uuid4().hex[:12]}.")


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of this module's own (service logs and state)."""
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def ingest_service(module_kafka: KafkaSettings, module_tmp: Path) -> Iterator[ServiceProcess]:
    """`triage ingest` in development mode (the development key works), not rate limited."""
    service = ServiceProcess(
        "ingest",
        service_env(
            module_kafka,
            TRIAGE_INGEST_RATE_LIMIT_PER_S="100000",
            TRIAGE_INGEST_RATE_LIMIT_BURST="100000",
            TRIAGE_INGEST_LOG_LEVEL="DEBUG",
        ),
        module_tmp,
    )
    service.start()
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def router_service(module_kafka: KafkaSettings, module_tmp: Path) -> Iterator[ServiceProcess]:
    """`triage router` with the development roster (tokens ``dev-<agent id>``)."""
    asyncio.run(ensure_topics(module_kafka, ALL_TOPICS))
    service = ServiceProcess(
        "router",
        service_env(
            module_kafka,
            TRIAGE_ROUTER_APP_ID=f"hr-{uuid.uuid4().hex[:8]}",
            TRIAGE_ROUTER_DATA_DIR=str(module_tmp / "router-data"),
            TRIAGE_ROUTER_COMMAND_TIMEOUT_S="10",
            TRIAGE_ROUTER_LOG_LEVEL="DEBUG",
        ),
        module_tmp,
    )
    service.start()
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()
