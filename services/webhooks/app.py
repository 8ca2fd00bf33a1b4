"""Builds the webhook worker: the delivery service and its small HTTP server (``/healthz``,
``/readyz``, ``/metrics``), run together in one event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.common.kafka import KafkaSettings
from services.common.serving import run_with_http
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

    async def work() -> None:
        await service.start_when_possible()
        await service.run()

    await run_with_http(
        "webhook worker",
        create_api(service),
        host=settings.host,
        port=settings.port,
        work=work,
        stop_work=service.stop,
        stop=stop,
    )
