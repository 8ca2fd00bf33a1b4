"""An ingest application on the real broker, driven over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.common.kafka import KafkaSettings
from services.common.topics import feedback_received
from services.ingest.app import create_app
from services.ingest.settings import DEV_API_KEY, IngestSettings

DEV_AUTH = {"Authorization": f"Bearer {DEV_API_KEY}"}

IngestFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@asynccontextmanager
async def running_ingest(
    kafka: KafkaSettings, *, wait_ready: bool = True, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """Start the ingest app (lifespan included) and yield an HTTP client for it."""
    settings = IngestSettings(**overrides)
    app: FastAPI = create_app(settings, kafka)
    async with app.router.lifespan_context(app):
        if wait_ready:
            assert await app.state.ingest.publisher.wait_ready(15), "broker never became ready"
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture
def ingest_factory(kafka: KafkaSettings) -> IngestFactory:
    """Start an ingest app with settings overrides, on this test's topics."""

    def factory(**overrides: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        return running_ingest(kafka, **overrides)

    return factory


@pytest.fixture
async def ingest(kafka: KafkaSettings) -> AsyncIterator[httpx.AsyncClient]:
    """A development-mode ingest app (the development key works)."""
    async with running_ingest(kafka) as client:
        yield client


@pytest.fixture
def topic(kafka: KafkaSettings) -> str:
    """This test's feedback.received topic."""
    return kafka.topic(feedback_received)
