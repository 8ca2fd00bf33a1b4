"""Builds the trends worker: the Kafka side and the API, run together in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Generator

import structlog
import uvicorn

from services.common.kafka import KafkaSettings
from services.trends.access import Access, load_access
from services.trends.api import create_api
from services.trends.metrics import TrendsMetrics
from services.trends.settings import TrendsSettings
from services.trends.worker import TrendsService

log = structlog.get_logger(__name__)


class _Server(uvicorn.Server):
    """uvicorn inside the worker's loop: the worker owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


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
    server = _Server(
        uvicorn.Config(
            create_api(service, access),
            host=settings.host,
            port=settings.port,
            access_log=False,
            log_config=None,
            server_header=False,
            lifespan="off",
        )
    )
    loop = asyncio.get_running_loop()
    if stop is None:
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    http = asyncio.create_task(server.serve(), name="trends-http")

    async def work() -> None:
        await service.start()
        await service.run()

    worker = asyncio.create_task(work(), name="trends-worker")
    stopped = asyncio.create_task(stop.wait(), name="trends-stop")
    log.info("trends worker listening", host=settings.host, port=settings.port)
    try:
        done, _ = await asyncio.wait({http, worker, stopped}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = None if task is stopped or task.cancelled() else task.exception()
            if error is not None:
                raise error
    finally:
        stopped.cancel()
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await service.stop()
        server.should_exit = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(http, return_exceptions=True), 5)
        log.info("trends worker stopped")
