"""Fixtures: one real embedded broker for the session, unique topics per test."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaProducer

from services.common.broker import EmbeddedBroker, free_port
from services.common.kafka import KafkaSettings
from services.ingest.settings import DEV_API_KEY
from services.router.roster import DEV_ROSTER_PATH
from tests.support.logscan import Sent, scan

# Logs of programs the tests run that are not the product's (Prometheus names its Debian
# package builder's e-mail address at start).
THIRD_PARTY_LOGS = frozenset({"prometheus.log"})


def _observe(sent: Sent, request: httpx.Request) -> None:
    sent.authorization(request.headers.get("authorization"))
    # A streamed body is never read here: the tests stream generated filler only.
    with contextlib.suppress(httpx.RequestNotRead):
        sent.body(request.content)


@pytest.fixture(scope="session", autouse=True)
def logs_hold_no_personal_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sent]:
    """At the end of the session, no log the services or the broker wrote (every ``*.log``
    under the session's temporary directory) holds an e-mail address, a phone number, a
    credential the tests used, or any text they sent over HTTP or to Kafka."""
    roster = yaml.safe_load(DEV_ROSTER_PATH.read_text())
    sent = Sent(secrets={DEV_API_KEY, *(f"dev-{agent['id']}" for agent in roster["agents"])})
    client_send, async_client_send = httpx.Client.send, httpx.AsyncClient.send
    producer_send = AIOKafkaProducer.send

    def send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        _observe(sent, request)
        return client_send(self, request, **kwargs)

    async def async_send(
        self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any
    ) -> httpx.Response:
        _observe(sent, request)
        return await async_client_send(self, request, **kwargs)

    async def produce(self: Any, topic: str, value: Any = None, *args: Any, **kwargs: Any) -> Any:
        sent.body(value if isinstance(value, bytes) else None)
        return await producer_send(self, topic, value, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(httpx.Client, "send", send)
        patch.setattr(httpx.AsyncClient, "send", async_send)
        patch.setattr(AIOKafkaProducer, "send", produce)
        yield sent
    logs = [
        path
        for path in sorted(tmp_path_factory.getbasetemp().rglob("*.log"))
        if path.name not in THIRD_PARTY_LOGS
    ]
    findings = scan(logs, sent)
    if findings:
        listed = "\n".join(str(finding) for finding in findings[:50])
        pytest.fail(f"{len(findings)} log lines hold personal data or secrets:\n{listed}")


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
