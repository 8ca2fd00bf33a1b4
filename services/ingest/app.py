"""Builds the ingest service: settings in, a FastAPI application out. Nothing runs at import."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.kafka import KafkaSettings
from services.common.observability import instrument_http
from services.common.problems import (
    document_problems,
    http_problem,
    problem_response,
    request_validation_problem,
)
from services.common.topics import feedback_received
from services.ingest.api import (
    ApiError,
    IngestState,
    error_response,
    router,
)
from services.ingest.auth import Authenticator
from services.ingest.decoding import WORKER_MODULES
from services.ingest.dedup import AcceptedEvents
from services.ingest.metrics import IngestMetrics
from services.ingest.models import BatchIn, ChatIn, CloudEventIn, ErrorBody, FeedbackIn, SocialIn
from services.ingest.publisher import Publisher
from services.ingest.ratelimit import RateLimiter
from services.ingest.settings import IngestSettings
from services.ingest.workers import ParseWorkers

log = structlog.get_logger(__name__)

API_DESCRIPTION = """\
Contact-centre platforms post customer feedback here: e-mails (raw MIME or JSON), chat
transcripts, social posts and direct messages, phone notes, web forms and surveys. Every message is
normalised to one `FeedbackReceived` event on the `feedback.received` topic.

**Authentication**: `Authorization: Bearer <API key>`. Platforms with a signing secret also send
`X-Triage-Timestamp` (Unix seconds) and `X-Triage-Signature: sha256=<hex HMAC-SHA256 of
"<timestamp>." + body>`; when the request has a query string or an `Idempotency-Key` header the
HMAC is of `"<timestamp>;" + query string as sent + "\\n" + Idempotency-Key + "\\n" + body`
instead, so that neither can be changed. Stale (older than the tolerance) or replayed signatures
are refused. A request without valid credentials is refused with `401` before its body is read.

**Rate limit**: each API key may post `TRIAGE_INGEST_RATE_LIMIT_PER_S` requests a second with
bursts of `TRIAGE_INGEST_RATE_LIMIT_BURST` (per ingest process); beyond that the answer is `429`
with `Retry-After`, before the body is read.

**Bodies** are read after authentication, under each operation's size limit (`413` beyond it)
and within `TRIAGE_INGEST_BODY_READ_TIMEOUT_S` (`408`). A body that takes more than
`TRIAGE_INGEST_PARSE_CPU_LIMIT_S` of CPU to parse is refused with `422`.

**Delivery**: `202` means the broker durably accepted the event. `503` with `Retry-After` means it
did not; retry. A repeated source event id (`id`) is answered `200` with the original event id and
produces nothing.
"""


class RequestMetrics:
    """Counts feedback requests by channel and status, and logs each one without its content."""

    def __init__(self, app: ASGIApp, metrics: IngestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v1/feedback"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            channel = scope.get("state", {}).get("channel") or _channel_of_path(path)
            label = self.metrics.channel_label(channel)
            self.metrics.requests.labels(label, str(status)).inc()
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit():
                    self.metrics.payload_bytes.labels(label).observe(int(value))
            log.info(
                "request",
                method=scope["method"],
                path=path,
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )


def _channel_of_path(path: str) -> str:
    tail = path.rstrip("/").rsplit("/", 1)[-1]
    return tail if tail in ("email", "chat", "social", "batch") else "unknown"


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        _, defs = models_json_schema(
            [
                (model, "validation")
                for model in (FeedbackIn, CloudEventIn, ChatIn, SocialIn, BatchIn, ErrorBody)
            ],
            ref_template="#/components/schemas/{model}",
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in defs.get("$defs", {}).items():
            components.setdefault(name, definition)
        schema["components"]["securitySchemes"] = {
            "apiKey": {"type": "http", "scheme": "bearer", "description": "Platform API key."}
        }
        for path, operations in schema["paths"].items():
            if path.startswith("/v1/"):
                for operation in operations.values():
                    operation["security"] = [{"apiKey": []}]
        app.openapi_schema = document_problems(schema)
        return app.openapi_schema

    return build


def create_app(
    settings: IngestSettings | None = None,
    kafka: KafkaSettings | None = None,
) -> FastAPI:
    """The ingest application; the publisher starts with the app's lifespan."""
    settings = settings or IngestSettings()
    kafka = kafka or KafkaSettings()
    metrics = IngestMetrics()
    publisher = Publisher(
        kafka,
        feedback_received,
        send_timeout_s=settings.produce_timeout_s,
        linger_ms=settings.linger_ms,
    )
    metrics.broker_up.set_function(lambda: 1.0 if publisher.ready else 0.0)
    state = IngestState(
        settings=settings,
        authenticator=Authenticator(settings),
        publisher=publisher,
        accepted=AcceptedEvents(ttl_s=settings.dedup_ttl_s, max_entries=settings.dedup_max_entries),
        metrics=metrics,
        limiter=RateLimiter(rate_per_s=settings.rate_limit_per_s, burst=settings.rate_limit_burst),
        parsers=ParseWorkers(
            processes=settings.parse_workers,
            cpu_limit_s=settings.parse_cpu_limit_s,
            timeout_s=settings.parse_timeout_s,
            preload=WORKER_MODULES,
        ),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await publisher.start()
        await state.parsers.warm_up()
        log.info(
            "ingest started",
            topic=publisher.topic,
            bootstrap=kafka.bootstrap,
            environment=settings.environment,
            development_key=settings.development_key_enabled,
        )
        try:
            yield
        finally:
            await state.parsers.close()
            await publisher.stop()
            log.info("ingest stopped")

    app = FastAPI(
        title="Complaint triage: ingest API",
        version="1.0.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "feedback", "description": "Post customer messages."},
            {"name": "operations", "description": "Health, readiness and metrics."},
        ],
    )
    app.state.ingest = state
    app.include_router(router)
    # Bodies are read by each operation once its caller is known, under the operation's limit
    # (see services.ingest.api), never by a middleware.
    app.add_middleware(RequestMetrics, metrics=metrics)
    instrument_http(app, metrics.registry)

    # Every refusal is RFC 9457 problem details (services.common.problems).
    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return request_validation_problem(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return http_problem(request, exc)

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", path=request.url.path)
        return problem_response(
            500, "internal error", instance=request.url.path, kind="internal-error"
        )

    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return app
