"""Builds the webhook worker: the delivery service and its small HTTP server (``/healthz``,
``/readyz``, ``/metrics``), run together in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Generator, Sequence

import structlog
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.common.kafka import KafkaSettings
from services.webhooks.metrics import WebhookMetrics
from services.webhooks.settings import WebhooksSettings
from services.webhooks.subscriptions import Subscription
from services.webhooks.worker import WebhookService

log = structlog.get_logger(__name__)


def create_api(service: WebhookService) -> Starlette:
    """Liveness, readiness (connected and every subscription positioned) and metrics."""

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if service.ready:
            return JSONResponse({"status": "ready", "subscriptions": len(service.subscriptions)})
        return JSONResponse({"status": "starting"}, status_code=503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
        ]
    )


class _Server(uvicorn.Server):
    """uvicorn inside the worker's loop: the worker owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def create_service(
    settings: WebhooksSettings,
    kafka: KafkaSettings,
    subscriptions: Sequence[Subscription],
    *,
    metrics: WebhookMetrics | None = None,
) -> WebhookService:
    """The delivery service of these subscriptions."""
    return WebhookService(settings, kafka, subscriptions, metrics=metrics)


async def serve(service: WebhookService, *, stop: asyncio.Event | None = None) -> None:
    """Run the service and its HTTP server until ``stop`` is set (or SIGINT/SIGTERM when no
    event is given); then commit what was delivered and return. A worker's unexpected error
    is raised after the same clean-up, so a supervisor restarts the process."""
    settings = service.settings
    server = _Server(
        uvicorn.Config(
            create_api(service),
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
    http = asyncio.create_task(server.serve(), name="webhooks-http")

    async def work() -> None:
        await service.start_when_possible()
        await service.run()

    worker = asyncio.create_task(work(), name="webhooks-delivery")
    stopped = asyncio.create_task(stop.wait(), name="webhooks-stop")
    log.info("webhook worker listening", host=settings.host, port=settings.port)
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
        log.info("webhook worker stopped")
