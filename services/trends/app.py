"""Builds the trends worker: the Kafka side and the API, run together in one event loop."""

from __future__ import annotations

import asyncio

import structlog

from services.common.kafka import KafkaSettings
from services.common.serving import run_with_http
from services.trends.access import Access, load_access
from services.trends.api import create_api
from services.trends.metrics import TrendsMetrics
from services.trends.settings import TrendsSettings
from services.trends.worker import TrendsService

log = structlog.get_logger(__name__)


def create_service(
    settings: TrendsSettings, kafka: KafkaSettings, *, metrics: TrendsMetrics | None = None
) -> TrendsService:
    """The trends service of these settings."""
    return TrendsService(settings, kafka, metrics=metrics)


async def serve(
    service: TrendsService, *, access: Access | None = None, stop: asyncio.Event | None = None
) -> None:
    """Run the worker and its API until ``stop`` is set (or SIGINT/SIGTERM when no event is
    given). A worker's unexpected error is raised after clean-up, so a supervisor restarts it."""
    settings = service.settings
    if access is None:
        access = load_access(settings.roster_file, production=settings.environment == "production")

    async def work() -> None:
        await service.start()
        await service.run()

    await run_with_http(
        "trends worker",
        create_api(service, access),
        host=settings.host,
        port=settings.port,
        work=work,
        stop_work=service.stop,
        stop=stop,
    )
