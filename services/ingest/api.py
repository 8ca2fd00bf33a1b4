"""HTTP views of the ingest service: authenticate, parse, normalise, publish, answer.

Nothing of a body is read before its sender is known: the caller is authenticated and
rate-limited from the headers alone, and only then is the body read, under its route's limit
and within a deadline (a signature over the body is checked after that). Views validate the raw
body themselves, so every malformed input (bad JSON, bad UTF-8, absurd nesting, wrong types)
becomes a 4xx naming the field, and nothing is produced. E-mails and large JSON bodies are
parsed by parse workers, under a CPU deadline, so no body can stall the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import unquote

import structlog
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

from services.common.clock import utc_now
from services.common.errors import BrokerUnavailable
from services.common.http import BodyTimeout, BodyTooLarge, read_body
from services.common.messages import Customer, CustomerTier, FeedbackReceived
from services.common.problems import problem_response, problem_type, validation_detail
from services.ingest import normalise
from services.ingest.auth import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Authenticator,
    AuthFailure,
    AuthFailureReason,
)
from services.ingest.decoding import (
    decode_batch,
    decode_cloudevents_batch,
    decode_email,
    decode_json,
    field_errors,
)
from services.ingest.dedup import AcceptedEvents
from services.ingest.email import EmailParseError
from services.ingest.metrics import IngestMetrics
from services.ingest.models import (
    Accepted,
    BatchItemResult,
    BatchResult,
    ChatIn,
    CloudEventData,
    CloudEventIn,
    ErrorBody,
    FeedbackIn,
    FieldError,
    SocialIn,
    Status,
)
from services.ingest.publisher import Publisher, Record
from services.ingest.ratelimit import RateLimiter, retry_after_header
from services.ingest.settings import IngestSettings
from services.ingest.workers import OverDeadline, ParseWorkers, WorkerError

log = structlog.get_logger(__name__)
M = TypeVar("M", bound=BaseModel)
# The same words whatever was wrong with the credentials: a caller learns nothing from them.
UNAUTHORIZED = "missing or wrong credentials"

JSON_TYPES = ("application/json",)
CLOUDEVENTS_TYPE = "application/cloudevents+json"
CLOUDEVENTS_BATCH_TYPE = "application/cloudevents-batch+json"
# A binary-mode CloudEvent carries its attributes in these headers and its data as the body.
CE_HEADER_PREFIX = "ce-"
EMAIL_TYPE = "message/rfc822"
EMAIL_EXAMPLE = (
    "From: Jane Doe <jane@example.com>\r\n"
    "To: help@acme.example\r\n"
    "Subject: Order A-5521 arrived broken\r\n"
    "Message-ID: <a5521-1@example.com>\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "My order arrived broken and nobody answers my emails.\r\n"
)


@dataclass
class IngestState:
    """What the views need, built once by the app factory."""

    settings: IngestSettings
    authenticator: Authenticator
    publisher: Publisher
    accepted: AcceptedEvents
    metrics: IngestMetrics
    limiter: RateLimiter
    parsers: ParseWorkers


class ApiError(Exception):
    """An answer other than success, raised from a view or dependency: answered as problem
    details of ``kind`` (see services.common.problems; None: the status says it all)."""

    def __init__(
        self,
        status_code: int,
        detail: str,
        headers: dict[str, str] | None = None,
        *,
        kind: str | None = None,
        errors: list[FieldError] | None = None,
    ) -> None:
        problem_type(kind)  # an unknown kind is a bug: fail where it is raised
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = headers
        self.kind = kind
        self.errors = errors


def error_response(request: Request, exc: ApiError) -> JSONResponse:
    """The ``application/problem+json`` answer of an :class:`ApiError`."""
    return problem_response(
        exc.status_code,
        exc.detail,
        instance=request.url.path,
        kind=exc.kind,
        errors=exc.errors,
        headers=exc.headers,
    )


def invalid(errors: list[FieldError], *, kind: str = "validation-error") -> ApiError:
    """A 422 naming the fields."""
    return ApiError(422, validation_detail(errors), kind=kind, errors=errors)


async def _state(request: Request) -> IngestState:
    state: IngestState = request.app.state.ingest
    return state


StateDep = Annotated[IngestState, Depends(_state)]


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated request: who sent it, and its body (read after they were known)."""

    platform: str
    body: bytes


def _unauthorized(request: Request, state: IngestState, failure: AuthFailure) -> ApiError:
    state.metrics.auth_failures.labels(failure.reason.value).inc()
    log.info("request refused", reason=failure.reason.value, path=request.url.path)
    return ApiError(401, UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})


def _signed_idempotency_key(request: Request) -> str | None:
    keys = request.headers.getlist("idempotency-key")
    if len(keys) > 1:  # which one would count is not what was signed
        raise AuthFailure(AuthFailureReason.BAD_SIGNATURE)
    return keys[0] if keys else None


async def _body(request: Request, state: IngestState, limit: int) -> bytes:
    timeout_s = state.settings.body_read_timeout_s
    try:
        return await read_body(request, limit=limit, timeout_s=timeout_s)
    except BodyTooLarge as exc:
        raise ApiError(413, str(exc)) from None
    except BodyTimeout as exc:
        log.info("request body too slow", path=request.url.path, timeout_s=timeout_s)
        raise ApiError(408, str(exc), {"Connection": "close"}) from None
    except ClientDisconnect:
        raise ApiError(400, "the request body was not received") from None


def _caller(max_bytes: Callable[[IngestSettings], int]) -> Callable[..., Any]:
    """A dependency that authenticates the caller, then reads the body under ``max_bytes``."""

    async def caller(
        request: Request,
        state: StateDep,
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
        timestamp: Annotated[
            str | None,
            Header(
                alias=TIMESTAMP_HEADER,
                description="Unix time of the signature (signed platforms).",
            ),
        ] = None,
        signature: Annotated[
            str | None,
            Header(
                alias=SIGNATURE_HEADER,
                description='"sha256=" + hex HMAC-SHA256 of "<timestamp>." + body, or of '
                '"<timestamp>;" + query string + "\\n" + Idempotency-Key + "\\n" + body when the '
                "request has either (signed platforms).",
            ),
        ] = None,
    ) -> Caller:
        """The calling platform and its body: 401 with no detail, then 429 when the platform is
        over its rate limit, both before any of the body is read (and neither takes a token);
        then 413 or 408 for the body, then 401 when a signature does not match it."""
        authenticator = state.authenticator
        try:
            platform = authenticator.platform_for(authorization)
            authenticator.check_signature_headers(
                platform, timestamp=timestamp, signature=signature
            )
        except AuthFailure as failure:
            raise _unauthorized(request, state, failure) from None
        wait_s = state.limiter.acquire(platform)
        if wait_s > 0:
            state.metrics.rate_limited.labels(platform).inc()
            log.debug("request rate limited", platform=platform, path=request.url.path)
            raise ApiError(
                429,
                "too many requests: this API key is over its rate limit; retry after "
                "Retry-After seconds",
                {"Retry-After": retry_after_header(wait_s)},
                kind="rate-limited",
            )
        body = await _body(request, state, max_bytes(state.settings))
        if authenticator.requires_signature(platform):
            try:
                signature_use = authenticator.verify_signature(
                    platform,
                    body,
                    timestamp=timestamp,
                    signature=signature,
                    query=request.scope.get("query_string", b"").decode("latin-1"),
                    idempotency_key=_signed_idempotency_key(request),
                    cloudevent_headers=_cloudevent_headers(request),
                    remember=False,
                )
            except AuthFailure as failure:
                raise _unauthorized(request, state, failure) from None
            if signature_use is not None:
                authenticator.use(signature_use)
                request.state.signature_use = signature_use
        request.state.platform = platform
        return Caller(platform=platform, body=body)

    return caller


EventCaller = Annotated[Caller, Depends(_caller(attrgetter("max_body_bytes")))]
EmailCaller = Annotated[Caller, Depends(_caller(attrgetter("max_email_bytes")))]
BatchCaller = Annotated[Caller, Depends(_caller(attrgetter("max_batch_bytes")))]


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _cloudevent_headers(request: Request) -> list[tuple[str, str]]:
    """The request's CloudEvents ``ce-*`` headers, names in lower case, values as sent."""
    return [
        (name.lower(), value)
        for name, value in request.headers.items()
        if name.lower().startswith(CE_HEADER_PREFIX)
    ]


def _binary_cloudevent(
    headers: list[tuple[str, str]], data: CloudEventData
) -> CloudEventIn | list[FieldError]:
    """A binary-mode CloudEvent: its attributes from the ``ce-*`` headers (percent-decoded, as
    the HTTP binding has them encoded) and ``data``, or what is wrong with them."""
    attributes: dict[str, str] = {}
    errors: list[FieldError] = []
    for name, raw in headers:
        attribute = name[len(CE_HEADER_PREFIX) :]
        loc: list[str | int] = ["header", name]
        if attribute in attributes:
            errors.append(FieldError(loc=loc, msg="sent more than once", type="value_error"))
            continue
        try:
            attributes[attribute] = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            errors.append(FieldError(loc=loc, msg="not UTF-8 once decoded", type="value_error"))
    if errors:
        return errors
    envelope = {**attributes, "datacontenttype": "application/json", "data": data}
    try:
        return CloudEventIn.model_validate(envelope)
    except ValidationError as exc:
        return [
            FieldError(
                loc=(
                    ["body", *err["loc"][1:]]
                    if err["loc"][:1] == ("data",)
                    else ["header", f"{CE_HEADER_PREFIX}{err['loc'][0]}", *err["loc"][1:]]
                ),
                msg=err["msg"],
                type=err["type"],
            )
            for err in exc.errors(include_url=False, include_input=False)
        ]


async def _in_worker(
    state: IngestState, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
) -> Any:
    """``fn`` run by a parse worker; 422 when it takes too long, 503 when no worker can run it."""
    try:
        return await state.parsers.run(fn, *args, **kwargs)
    except OverDeadline as exc:
        state.metrics.parse_refusals.labels("over_deadline").inc()
        log.warning("body refused: parsing it took too long", reason=str(exc))
        error = FieldError(
            loc=["body"], msg=f"the body is too complex to parse: {exc}", type="too_complex"
        )
        raise invalid([error], kind="too-complex") from None
    except WorkerError as exc:
        state.metrics.parse_refusals.labels("unavailable").inc()
        log.warning("body not parsed: no parse worker", error=type(exc).__name__)
        raise ApiError(
            503,
            "the body could not be parsed now; retry later",
            {"Retry-After": str(state.settings.retry_after_s)},
            kind="parser-unavailable",
        ) from None


async def _parse(state: IngestState, model: type[M], body: bytes) -> M:
    """The JSON body as ``model``; large bodies are parsed off the event loop."""
    if len(body) <= state.settings.parse_inline_bytes:
        outcome = decode_json(model, body)
    else:
        outcome = await _in_worker(state, decode_json, model, body)
    if isinstance(outcome, list):
        raise invalid(outcome)
    parsed: M = outcome
    return parsed


def _normalised(
    build: Callable[..., FeedbackReceived], *args: Any, **kwargs: Any
) -> FeedbackReceived:
    try:
        event: FeedbackReceived = build(*args, **kwargs)
    except normalise.InputError as exc:
        raise invalid([FieldError(loc=list(exc.loc), msg=exc.msg, type="value_error")]) from None
    except ValidationError as exc:
        raise invalid(field_errors(exc)) from None
    return event


def _record(event: FeedbackReceived) -> Record:
    return Record(
        key=event.customer.id.encode(),
        value=event.model_dump_json(exclude_none=True).encode(),
        headers=(
            ("event_type", event.event_type.encode()),
            ("schema_version", str(event.schema_version).encode()),
            ("event_id", str(event.event_id).encode()),
            ("content-type", b"application/json"),
        ),
    )


def _dedup_key(event: FeedbackReceived) -> str:
    return f"{event.source.platform}\x00{event.source.event_id}"


def _release_signature(request: Request, state: IngestState) -> None:
    """Nothing was accepted (503): the platform may send the same signed request again."""
    signature_use = getattr(request.state, "signature_use", None)
    if signature_use is not None:
        state.authenticator.release(signature_use)


def _unavailable(request: Request, state: IngestState) -> ApiError:
    _release_signature(request, state)
    return ApiError(
        503,
        "the event was not accepted: the message broker is unavailable; retry later",
        {"Retry-After": str(state.settings.retry_after_s)},
        kind="broker-unavailable",
    )


async def _publish(state: IngestState, events: list[FeedbackReceived]) -> list[bool]:
    """Produce events together; True where the broker acknowledged."""
    started = time.perf_counter()
    outcomes = await state.publisher.publish_many([_record(e) for e in events])
    state.metrics.produce_seconds.observe(time.perf_counter() - started)
    return [outcome is None for outcome in outcomes]


async def accept(request: Request, state: IngestState, event: FeedbackReceived) -> JSONResponse:
    """Produce one event once; 202 when new, 200 when a repeat, 503 when the broker fails."""
    request.state.channel = event.channel.value

    async def publish() -> None:
        (ok,) = await _publish(state, [event])
        if not ok:
            raise BrokerUnavailable("not acknowledged")

    try:
        outcome = await state.accepted.accept_once(_dedup_key(event), event.event_id, publish)
    except BrokerUnavailable:
        state.metrics.events.labels(event.channel.value, Status.UNAVAILABLE.value).inc()
        log.warning("event not accepted: broker unavailable", event_id=str(event.event_id))
        raise _unavailable(request, state) from None
    if outcome.duplicate:
        state.metrics.duplicates.labels(event.channel.value).inc()
        state.metrics.events.labels(event.channel.value, Status.DUPLICATE.value).inc()
        log.info("duplicate event", event_id=str(outcome.event_id), channel=event.channel.value)
        body = Accepted(event_id=outcome.event_id, status=Status.DUPLICATE)
        return JSONResponse(body.model_dump(mode="json"), status_code=200)
    state.metrics.events.labels(event.channel.value, Status.ACCEPTED.value).inc()
    log.info(
        "event accepted",
        event_id=str(event.event_id),
        channel=event.channel.value,
        platform=event.source.platform,
    )
    body = Accepted(event_id=event.event_id, status=Status.ACCEPTED)
    return JSONResponse(body.model_dump(mode="json"), status_code=202)


def _body_doc(*schemas: tuple[str, str]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": {"$ref": f"#/components/schemas/{name}"}}
                for media, name in schemas
            },
        }
    }


RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer", "minimum": 1},
    }
}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorBody,
        "description": "Missing or wrong credentials (the same answer whatever was wrong).",
        "headers": {"WWW-Authenticate": {"description": "`Bearer`.", "schema": {"type": "string"}}},
    },
    408: {
        "model": ErrorBody,
        "description": "The body did not arrive within TRIAGE_INGEST_BODY_READ_TIMEOUT_S.",
    },
    413: {"model": ErrorBody, "description": "The body is larger than the documented limit."},
    415: {"model": ErrorBody, "description": "Unsupported Content-Type."},
    422: {
        "model": ErrorBody,
        "description": "Invalid input, `type` .../problems/validation-error: `errors` names each "
        "field and why. Or .../problems/too-complex: not parsed within "
        "TRIAGE_INGEST_PARSE_CPU_LIMIT_S.",
    },
    429: {
        "model": ErrorBody,
        "description": "`type` .../problems/rate-limited: this API key is over its rate limit "
        "(TRIAGE_INGEST_RATE_LIMIT_PER_S, TRIAGE_INGEST_RATE_LIMIT_BURST); nothing was read. "
        "Retry after Retry-After seconds.",
        "headers": RETRY_AFTER,
    },
    503: {
        "model": ErrorBody,
        "description": "`type` .../problems/broker-unavailable: the broker did not acknowledge "
        "the event, or .../problems/parser-unavailable: no parse worker was free; nothing was "
        "accepted. Retry after the Retry-After header's seconds.",
        "headers": RETRY_AFTER,
    },
    500: {
        "model": ErrorBody,
        "description": "A bug (`.../problems/internal-error`): nothing more.",
    },
}
ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"model": Accepted, "description": "Durably accepted by the broker."},
    200: {"model": Accepted, "description": "A repeat of an accepted event: nothing new produced."},
    **ERRORS,
}

router = APIRouter()


@router.post(
    "/v1/feedback",
    status_code=202,
    responses=ACCEPTED,
    openapi_extra=_body_doc(("application/json", "FeedbackIn"), (CLOUDEVENTS_TYPE, "CloudEventIn")),
    summary="Post one message in the canonical form (or as a CloudEvent)",
    tags=["feedback"],
)
async def post_feedback(request: Request, state: StateDep, caller: EventCaller) -> Response:
    """The canonical JSON event, or the same event as a CloudEvents 1.0 structured JSON body, or
    as a binary-mode CloudEvent (attributes in ``ce-*`` headers, the canonical event as data)."""
    media = _media_type(request)
    platform, body = caller.platform, caller.body
    settings = state.settings
    cloudevent_headers = _cloudevent_headers(request)
    if any(name == "ce-specversion" for name, _ in cloudevent_headers):
        # Binary mode: the attributes are headers, the body is the data.
        if media not in JSON_TYPES:
            raise ApiError(
                415, "a binary-mode CloudEvent's data must be application/json (canonical event)"
            )
        data = await _parse(state, CloudEventData, body)
        envelope = _binary_cloudevent(cloudevent_headers, data)
        if isinstance(envelope, list):
            raise invalid(envelope)
        event = _normalised(
            normalise.from_cloudevent,
            envelope,
            platform=platform,
            max_text_chars=settings.max_text_chars,
            now=utc_now(),
        )
    elif media == CLOUDEVENTS_TYPE:
        envelope = await _parse(state, CloudEventIn, body)
        event = _normalised(
            normalise.from_cloudevent,
            envelope,
            platform=platform,
            max_text_chars=settings.max_text_chars,
            now=utc_now(),
        )
    elif media in JSON_TYPES:
        canonical = await _parse(state, FeedbackIn, body)
        event = _normalised(
            normalise.from_feedback,
            canonical,
            platform=platform,
            max_text_chars=settings.max_text_chars,
            now=utc_now(),
        )
    else:
        raise ApiError(
            415,
            f"Content-Type must be application/json or {CLOUDEVENTS_TYPE} "
            f"({CLOUDEVENTS_BATCH_TYPE} goes to /v1/feedback/batch)",
        )
    return await accept(request, state, event)


@router.post(
    "/v1/feedback/email",
    status_code=202,
    responses=ACCEPTED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                EMAIL_TYPE: {
                    "schema": {"type": "string", "format": "binary"},
                    "example": EMAIL_EXAMPLE,
                }
            },
        }
    },
    summary="Post a raw RFC 822 e-mail",
    tags=["feedback"],
)
async def post_email(
    request: Request,
    state: StateDep,
    caller: EmailCaller,
    customer_id: Annotated[
        str | None,
        Query(min_length=1, max_length=256, description="Customer reference; default: sender."),
    ] = None,
    customer_tier: Annotated[CustomerTier | None, Query()] = None,
    language: Annotated[str | None, Query(max_length=35)] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=256,
            description="Source event id; default: the Message-ID, else a hash of the message.",
        ),
    ] = None,
) -> Response:
    """A raw e-mail: the text part (or HTML as text) without quotes or signature; the sender is
    the customer; Message-ID, In-Reply-To and References are kept for threading."""
    request.state.channel = "email"
    if _media_type(request) != EMAIL_TYPE:
        raise ApiError(415, f"Content-Type must be {EMAIL_TYPE}")
    raw = caller.body
    parsed = await _in_worker(
        state,
        decode_email,
        raw,
        max_bytes=state.settings.max_email_bytes,
        max_text_chars=state.settings.max_text_chars,
    )
    if isinstance(parsed, EmailParseError):
        raise invalid([FieldError(loc=["body"], msg=str(parsed), type="email_error")])
    customer = None
    if customer_id or customer_tier or language:
        customer = Customer(
            id=customer_id or parsed.sender_address[:256], tier=customer_tier, language=language
        )
    event = _normalised(
        normalise.from_email,
        parsed,
        source_event_id=normalise.email_source_id(parsed, raw, idempotency_key),
        platform=caller.platform,
        max_text_chars=state.settings.max_text_chars,
        now=utc_now(),
        customer=customer,
    )
    return await accept(request, state, event)


@router.post(
    "/v1/feedback/chat",
    status_code=202,
    responses=ACCEPTED,
    openapi_extra=_body_doc(("application/json", "ChatIn")),
    summary="Post a chat transcript",
    tags=["feedback"],
)
async def post_chat(request: Request, state: StateDep, caller: EventCaller) -> Response:
    """A transcript of ordered turns; the customer's turns are the text, the transcript is kept."""
    request.state.channel = "chat"
    if _media_type(request) not in JSON_TYPES:
        raise ApiError(415, "Content-Type must be application/json")
    chat = await _parse(state, ChatIn, caller.body)
    event = _normalised(
        normalise.from_chat,
        chat,
        platform=caller.platform,
        max_text_chars=state.settings.max_text_chars,
        now=utc_now(),
    )
    return await accept(request, state, event)


@router.post(
    "/v1/feedback/social",
    status_code=202,
    responses=ACCEPTED,
    openapi_extra=_body_doc(("application/json", "SocialIn")),
    summary="Post a social-media post or direct message",
    tags=["feedback"],
)
async def post_social(request: Request, state: StateDep, caller: EventCaller) -> Response:
    """A post, reply, review or direct message with its author, visibility and reach."""
    request.state.channel = "social"
    if _media_type(request) not in JSON_TYPES:
        raise ApiError(415, "Content-Type must be application/json")
    social = await _parse(state, SocialIn, caller.body)
    event = _normalised(
        normalise.from_social,
        social,
        platform=caller.platform,
        max_text_chars=state.settings.max_text_chars,
        now=utc_now(),
    )
    return await accept(request, state, event)


@router.post(
    "/v1/feedback/batch",
    status_code=202,
    responses={
        202: {"model": BatchResult, "description": "Every item accepted or a repeat."},
        207: {"model": BatchResult, "description": "Some items were invalid or not accepted."},
        **ERRORS,
        503: {
            **ERRORS[503],
            "description": f"{ERRORS[503]['description']} A batch's problem also carries the "
            "members of BatchResult (counts and per-item outcomes).",
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/BatchIn"}},
                CLOUDEVENTS_BATCH_TYPE: {
                    "schema": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"$ref": "#/components/schemas/CloudEventIn"},
                    }
                },
            },
        }
    },
    summary="Post many events at once (bulk import), canonical or as a CloudEvents batch",
    tags=["feedback"],
)
async def post_batch(request: Request, state: StateDep, caller: BatchCaller) -> Response:
    """Up to TRIAGE_INGEST_MAX_BATCH_ITEMS events, each validated and answered on its own: 202
    when all were accepted (or repeats), 207 when some were not, 503 when the broker accepted
    none. The body is ``{"items": [canonical events]}`` (``application/json``), or a CloudEvents
    batch: a JSON array of structured CloudEvents (``application/cloudevents-batch+json``)."""
    request.state.channel = "batch"
    media = _media_type(request)
    if media not in (*JSON_TYPES, CLOUDEVENTS_BATCH_TYPE):
        raise ApiError(415, f"Content-Type must be application/json or {CLOUDEVENTS_BATCH_TYPE}")
    cloudevents = media == CLOUDEVENTS_BATCH_TYPE
    platform, body = caller.platform, caller.body
    limit = state.settings.max_batch_items
    decode = decode_cloudevents_batch if cloudevents else decode_batch
    if len(body) <= state.settings.parse_inline_bytes:
        decoded = decode(body, max_items=limit)
    else:
        decoded = await _in_worker(state, decode, body, max_items=limit)
    if isinstance(decoded, list):
        raise invalid(decoded)
    batch = decoded
    results: list[BatchItemResult] = []
    channels: dict[int, str] = {}
    fresh: dict[str, tuple[int, FeedbackReceived]] = {}
    now = utc_now()
    for index, item in enumerate(batch.items):
        prefix: tuple[str | int, ...] = ("body", index) if cloudevents else ("body", "items", index)
        try:
            if cloudevents:
                event = normalise.from_cloudevent(
                    CloudEventIn.model_validate(item),
                    platform=platform,
                    max_text_chars=state.settings.max_text_chars,
                    now=now,
                )
            else:
                event = normalise.from_feedback(
                    FeedbackIn.model_validate(item),
                    platform=platform,
                    max_text_chars=state.settings.max_text_chars,
                    now=now,
                )
        except ValidationError as exc:
            results.append(
                BatchItemResult(
                    index=index, status=Status.INVALID, errors=field_errors(exc, prefix)
                )
            )
            continue
        except normalise.InputError as exc:
            loc = [*prefix, *exc.loc[1:]]
            error = FieldError(loc=loc, msg=exc.msg, type="value_error")
            results.append(BatchItemResult(index=index, status=Status.INVALID, errors=[error]))
            continue
        channels[index] = event.channel.value
        key = _dedup_key(event)
        if key in fresh or state.accepted.seen(key):
            results.append(
                BatchItemResult(index=index, status=Status.DUPLICATE, event_id=event.event_id)
            )
            continue
        fresh[key] = (index, event)
        results.append(
            BatchItemResult(index=index, status=Status.ACCEPTED, event_id=event.event_id)
        )
    pending = list(fresh.values())
    acknowledged = await _publish(state, [event for _, event in pending]) if pending else []
    by_index = {r.index: r for r in results}
    for (index, event), ok in zip(pending, acknowledged, strict=True):
        if ok:
            state.accepted.remember(_dedup_key(event), event.event_id)
        else:
            by_index[index].status = Status.UNAVAILABLE
            by_index[index].event_id = None
    counts = {status: 0 for status in Status}
    for result in results:
        counts[result.status] += 1
        channel = channels.get(result.index, "unknown")
        state.metrics.events.labels(channel, result.status.value).inc()
        if result.status is Status.DUPLICATE:
            state.metrics.duplicates.labels(channel).inc()
    summary = BatchResult(
        accepted=counts[Status.ACCEPTED],
        duplicates=counts[Status.DUPLICATE],
        invalid=counts[Status.INVALID],
        unavailable=counts[Status.UNAVAILABLE],
        results=results,
    )
    log.info(
        "batch answered",
        accepted=summary.accepted,
        duplicates=summary.duplicates,
        invalid=summary.invalid,
        unavailable=summary.unavailable,
    )
    headers: dict[str, str] = {}
    if summary.unavailable and not summary.accepted and not summary.duplicates:
        _release_signature(request, state)
        # A refusal like any other, with the per-item outcomes as extension members.
        return problem_response(
            503,
            "no event was accepted: the message broker is unavailable; retry later",
            instance=request.url.path,
            kind="broker-unavailable",
            headers={"Retry-After": str(state.settings.retry_after_s)},
            extensions=summary.model_dump(mode="json"),
        )
    if summary.accepted + summary.duplicates == len(results):
        status_code = 202
    else:
        status_code = 207
        if summary.unavailable:
            headers["Retry-After"] = str(state.settings.retry_after_s)
    return JSONResponse(summary.model_dump(mode="json"), status_code=status_code, headers=headers)


class Health(BaseModel):
    """Liveness or readiness."""

    status: Literal["ok", "unavailable"]
    broker: Literal["up", "down"] | None = None


@router.get("/healthz", tags=["operations"], summary="Liveness")
async def healthz() -> Health:
    """The process is alive."""
    return Health(status="ok")


@router.get(
    "/readyz",
    tags=["operations"],
    summary="Readiness: the broker accepts events",
    responses={503: {"model": Health, "description": "The broker is not reachable."}},
)
async def readyz(state: StateDep) -> Response:
    """Ready only while the broker is reachable and the topic exists."""
    if state.publisher.ready:
        return JSONResponse(Health(status="ok", broker="up").model_dump())
    body = Health(status="unavailable", broker="down").model_dump()
    return JSONResponse(body, status_code=503)


@router.get(
    "/metrics",
    tags=["operations"],
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
)
async def metrics(state: StateDep) -> Response:
    """Metrics in the Prometheus text format."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
