"""The agent API: agents work their cases, supervisors watch and steer the floor.

Views only authenticate, translate and wait: every change is a command sent through the
router's inbox topic and applied by the routing worker, which answers with the result.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Protocol

import structlog
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common.cases import (
    AgentTier,
    AwayReason,
    Case,
    CaseEvent,
    CaseState,
    Presence,
    Priority,
)
from services.common.http import BodyLimit
from services.common.messages import Category, Channel, DifficultType, Tag
from services.common.models import WireModel
from services.common.observability import instrument_http
from services.common.problems import (
    ProblemError,
    document_problems,
    http_problem,
    problem_response,
    request_validation_problem,
)
from services.router.access import sees
from services.router.commands import (
    COMMAND_TYPES,
    MAX_INCIDENT_EVENTS,
    TRANSFER_TARGET,
    Action,
    Command,
    CommandResult,
    IncidentRef,
    IncidentTagged,
    Labels,
    Status,
)
from services.router.engine import Engine
from services.router.errors import (
    CASE_ERRORS,
    DEFAULT_MAX_BODY_BYTES,
    ERRORS,
    LIST_ERRORS,
    Problem,
)
from services.router.floor import FloorView, floor_view
from services.router.paging import CursorError, Key, decode_cursor, fingerprint, microseconds, page
from services.router.roster import AgentProfile

log = structlog.get_logger(__name__)
IDEMPOTENCY_NAMESPACE = uuid.UUID("5d0c2d8e-49a7-4f47-9e3c-0f1f6a0f7c3a")
CONSOLE_DIR = Path(__file__).parent.parent / "console" / "static"
# The console is same-origin static files: no inline scripts or styles, no third parties.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class Runtime(Protocol):
    """What the API needs from the running worker."""

    @property
    def engine(self) -> Engine | None: ...

    @property
    def ready(self) -> bool: ...

    async def submit(self, command: Command) -> CommandResult: ...

    def subscribe(
        self, agent_id: str, supervisor: bool, *, token_sha256: str | None = None
    ) -> asyncio.Queue[tuple[CaseEvent, bytes] | None]: ...

    def unsubscribe(self, queue: asyncio.Queue[tuple[CaseEvent, bytes] | None]) -> None: ...

    def metrics_text(self) -> bytes: ...


class ReasonBody(WireModel):
    reason: str | None = Field(default=None, max_length=500)


class RespondBody(WireModel):
    chars: int | None = Field(
        default=None, ge=0, le=1_000_000, description="Length of the reply the agent sent."
    )


class ResolveBody(WireModel):
    note: str | None = Field(default=None, max_length=2000, description="Resolution note.")


class TransferBody(WireModel):
    to_team: str | None = Field(default=None, max_length=40)
    to_agent: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, max_length=500)


class ReassignBody(WireModel):
    agent_id: str = Field(max_length=64)


class CsatBody(WireModel):
    score: int = Field(ge=1, le=5, description="Customer satisfaction, 1 (very bad) to 5.")


class IncidentBody(IncidentRef):
    """The incident, and the messages whose cases it concerns (an emerging cluster's members)."""

    event_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_INCIDENT_EVENTS)


class PresenceBody(WireModel):
    presence: Presence


class AgentView(BaseModel):
    """An agent with presence and load."""

    profile: AgentProfile
    presence: Presence
    load: dict[Channel, float]
    utilisation: float
    cases: list[uuid.UUID]
    hostile_streak: int
    lapsed_offers: int = Field(description="Offers in a row that expired unanswered.")
    away_reason: AwayReason | None = Field(
        description="Why the router set the agent away (null: the agent's own presence)."
    )


class TeamMember(BaseModel):
    id: str
    name: str
    tier: AgentTier
    presence: Presence


class TeamView(BaseModel):
    """A team, the categories it owns and its agents (for transfers and reassignment)."""

    id: str
    name: str
    categories: list[Category]
    agents: list[TeamMember]


class QueueEntry(BaseModel):
    case_id: uuid.UUID
    priority: Priority
    category: Category
    channel: Channel
    waiting_seconds: float
    required_tier: AgentTier


class QueueView(BaseModel):
    """A team's waiting cases in the order they will be taken."""

    team: str
    depth: int
    by_priority: dict[Priority, int]
    oldest_seconds: dict[Priority, float]
    cases: list[QueueEntry]


MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=512,
        description="The previous page's `next_cursor`; the filters must be the same.",
    ),
]
NEXT_CURSOR = Field(
    description="Pass as `cursor`, with the same filters, for the next page; null at the end."
)


class ReviewMessage(BaseModel):
    """A message whose tags need review, with the runner-up of each tag."""

    event_id: uuid.UUID
    received_at: datetime
    excerpt: str = Field(description="The first 300 characters of the text.")
    sentiment: Tag
    category: Tag
    difficult: Tag


class ReviewItem(BaseModel):
    """A case in the review lane."""

    case_id: uuid.UUID
    team: str
    channel: Channel
    state: CaseState
    priority: Priority
    category: Category
    difficult: DifficultType
    hold: bool = Field(description="Not offered until reviewed.")
    since: datetime
    waiting_seconds: float
    messages: list[ReviewMessage]


class ReviewPage(BaseModel):
    """A page of the review lane, oldest first."""

    items: list[ReviewItem]
    next_cursor: str | None = NEXT_CURSOR


class CasePage(BaseModel):
    """A page of cases, newest first."""

    items: list[Case]
    next_cursor: str | None = NEXT_CURSOR


class AgentPage(BaseModel):
    """A page of the roster, by agent id."""

    items: list[AgentView]
    next_cursor: str | None = NEXT_CURSOR


class CaseFilters(BaseModel):
    """What a supervisor narrows the cases to; each filter given must hold."""

    state: list[CaseState] | None = Field(default=None, description="Any of these states.")
    team: str | None = Field(default=None, max_length=40)
    priority: list[Priority] | None = Field(default=None, description="Any of these priorities.")
    channel: list[Channel] | None = Field(default=None, description="Any of these channels.")
    needs_review: bool | None = Field(
        default=None, description="A message of the case was tagged with low confidence."
    )
    updated_since: datetime | None = Field(
        default=None, description="Changed at or after this time (UTC when no offset is given)."
    )
    assignee: str | None = Field(
        default=None, max_length=64, description="Assigned or offered to this agent."
    )
    open: bool = Field(default=False, description="Only cases not resolved.")
    event_id: list[uuid.UUID] | None = Field(
        default=None,
        max_length=MAX_INCIDENT_EVENTS,
        description="Cases holding any of these messages (an emerging cluster's members).",
    )

    @field_validator("updated_since")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    def admit(self, case: Case) -> bool:
        """Whether ``case`` passes every filter given."""
        since = self.updated_since
        return (
            (self.state is None or case.state in self.state)
            and (self.team is None or case.team == self.team)
            and (self.priority is None or case.priority in self.priority)
            and (self.channel is None or case.channel in self.channel)
            and (self.needs_review is None or _needs_review(case) == self.needs_review)
            and (since is None or case.updated_at >= since)
            and (
                self.assignee is None
                or self.assignee in (case.assignee, case.offer and case.offer.agent_id)
            )
            and (not self.open or case.is_open)
        )


class AgentFilters(BaseModel):
    """What a supervisor narrows the roster to."""

    team: str | None = Field(default=None, max_length=40)
    presence: list[Presence] | None = Field(default=None, description="Any of these presences.")
    tier: list[AgentTier] | None = Field(default=None, description="Any of these tiers.")

    def admit(self, profile: AgentProfile, presence: Presence) -> bool:
        """Whether the agent passes every filter given."""
        return (
            (self.team is None or profile.team == self.team)
            and (self.presence is None or presence in self.presence)
            and (self.tier is None or profile.tier in self.tier)
        )


def _needs_review(case: Case) -> bool:
    return any(message.needs_review for message in case.messages)


CASE_KEY = (int, str)


def _case_key(case: Case) -> Key:
    # Creation time and id never change, so a case keeps its place while it is worked.
    return (microseconds(case.created_at), str(case.case_id))


def _all_cases(engine: Engine) -> Iterable[Case]:
    """Every case the router keeps (the caller's scope is applied after)."""
    return (record.case for record in engine.records.values())


def _cases_of(engine: Engine, filters: CaseFilters) -> Iterable[Case]:
    """The cases a listing looks through: those holding the given events, else all."""
    if filters.event_id is None:
        return _all_cases(engine)
    ids = dict.fromkeys(engine.by_event[e] for e in filters.event_id if e in engine.by_event)
    return (case for case in map(engine.case, ids) if case is not None)


def _in_review(case: Case) -> bool:
    return case.review is not None and case.review.status == "pending"


def _held_for_review(case: Case) -> bool:
    return case.review is not None and case.review.hold


def _review_key(case: Case) -> Key:
    assert case.review is not None
    return (microseconds(case.review.since), str(case.case_id))


def _review_item(case: Case, now: datetime) -> ReviewItem:
    assert case.review is not None
    unsure = [m for m in case.messages if m.needs_review] or case.messages[-1:]
    return ReviewItem(
        case_id=case.case_id,
        team=case.team,
        channel=case.channel,
        state=case.state,
        priority=case.priority,
        category=case.category,
        difficult=case.difficult,
        hold=case.review.hold,
        since=case.review.since,
        waiting_seconds=round((now - case.review.since).total_seconds(), 3),
        messages=[
            ReviewMessage(
                event_id=m.event_id,
                received_at=m.received_at,
                excerpt=m.text[:300],
                sentiment=m.sentiment,
                category=m.category,
                difficult=m.difficult,
            )
            for m in unsure
        ],
    )


def _after(cursor: str | None, digest: str, shape: tuple[type, ...]) -> Key | None:
    if cursor is None:
        return None
    try:
        return decode_cursor(cursor, digest, shape)
    except CursorError as exc:
        raise ProblemError(400, str(exc), kind="invalid-cursor") from None


STATUS_CODES = {
    Status.OK: 200,
    Status.NOT_FOUND: 404,
    Status.FORBIDDEN: 403,
    Status.CONFLICT: 409,
    Status.INVALID: 422,
}

bearer = HTTPBearer(auto_error=False, description="The agent's API token.")
# The same words whatever was wrong with the token: a caller learns nothing from them.
UNAUTHORIZED = "missing or unknown agent token"
NOT_YOUR_CASE = "this case is not yours"
SUPERVISOR_ONLY = "only a supervisor may do this"
RETRY = {"Retry-After": "2"}


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _engine_of(runtime: Runtime) -> Engine:
    engine = runtime.engine
    if engine is None or not runtime.ready:
        raise ProblemError(
            503, "the router is starting or on standby; retry", kind="not-ready", headers=RETRY
        )
    return engine


def ready_engine(request: Request) -> Engine:
    """The routing state, or 503 while the worker starts or stands by."""
    return _engine_of(_runtime(request))


# Every view and dependency that reads the engine is ``async def``: the engine's dicts change
# on the event loop, and a plain ``def`` would run in the thread pool and read them mid-change.


async def current_agent(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> AgentProfile:
    """The agent whose bearer token this is; 401 without a valid one."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ProblemError(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
    agent = ready_engine(request).agent_by_token(credentials.credentials)
    if agent is None:
        raise ProblemError(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
    return agent


async def refusal(request: Request) -> Response | None:
    """The 401 (or 503) a /v1 request gets before anything about its body is said."""
    if not request.url.path.startswith("/v1/"):
        return None
    try:
        await current_agent(request, await bearer(request))
    except ProblemError as refused:
        return http_problem(request, refused)
    return None


async def supervisor(agent: Annotated[AgentProfile, Depends(current_agent)]) -> AgentProfile:
    """The calling agent if a supervisor; 403 otherwise."""
    if not agent.is_supervisor:
        raise ProblemError(403, SUPERVISOR_ONLY, kind="supervisor-only")
    return agent


Agent = Annotated[AgentProfile, Depends(current_agent)]
Supervisor = Annotated[AgentProfile, Depends(supervisor)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Repeat a command safely: the same key from the same agent applies once.",
    ),
]


def create_api(
    runtime: Runtime,
    *,
    title: str = "Complaint triage: agent API",
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    """The FastAPI app of the router; bodies over ``max_body_bytes`` are answered 413; request
    durations go to ``registry`` when given."""
    app = FastAPI(
        title=title,
        version="1",
        description=(
            "Agents receive offers and work their cases; supervisors see the queues, every "
            "case and the roster. Authenticate with `Authorization: Bearer <agent token>`."
        ),
    )
    app.state.runtime = runtime
    app.add_middleware(BodyLimit, limit_for=lambda path: max_body_bytes)
    if registry is not None:
        instrument_http(app, registry)

    # The body is read before the token is checked: a caller without a valid token is answered
    # 401 even when the body is malformed, and learns nothing about it.
    # Every refusal is RFC 9457 problem details (services.common.problems).
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return await refusal(request) or request_validation_problem(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def unreadable_body(request: Request, exc: StarletteHTTPException) -> Response:
        refused = await refusal(request) if exc.status_code == 400 else None
        return refused or http_problem(request, exc)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", path=request.url.path)
        return problem_response(
            500, "internal error", instance=request.url.path, kind="internal-error"
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    v1 = APIRouter(prefix="/v1", responses=ERRORS)

    def engine_or_503() -> Engine:
        return _engine_of(runtime)

    async def run(
        agent: AgentProfile,
        action: Action,
        *,
        key: str | None,
        case_id: uuid.UUID | None = None,
        **fields: Any,
    ) -> Any:
        command_id = (
            uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{agent.id}\x00{action}\x00{case_id}\x00{key}")
            if key
            else uuid.uuid4()
        )
        if case_id is not None:
            fields["case_id"] = case_id
        command = COMMAND_TYPES[action](
            command_id=command_id, actor=agent.id, at=datetime.now(UTC), **fields
        )
        engine_or_503()
        try:
            result = await runtime.submit(command)
        except TimeoutError:
            raise ProblemError(
                503,
                "the router did not answer in time; retry with the same Idempotency-Key",
                kind="command-timeout",
                headers=RETRY,
            ) from None
        if result.status == Status.OK:
            if result.incident is not None:
                return result.incident
            return result.case if result.case is not None else {"status": "ok"}
        detail = result.message or result.status.value
        if result.status == Status.FORBIDDEN:
            # The same words for every case the agent may not touch: nothing about its state.
            if detail == "supervisors only":
                raise ProblemError(403, SUPERVISOR_ONLY, kind="supervisor-only")
            raise ProblemError(403, NOT_YOUR_CASE, kind="not-your-case")
        if result.status == Status.NOT_FOUND:
            raise ProblemError(404, detail)
        kind = "state-conflict" if result.status == Status.CONFLICT else "invalid-command"
        raise ProblemError(STATUS_CODES[result.status], detail, kind=kind)

    @v1.get("/me", summary="The calling agent, with presence and load")
    async def me(agent: Agent) -> AgentView:
        return _agent_view(engine_or_503(), agent.id)

    @v1.put("/me/presence", summary="Set your presence")
    async def set_my_presence(agent: Agent, body: PresenceBody, key: IdempotencyKey = None) -> Any:
        return await run(agent, Action.PRESENCE, key=key, presence=body.presence)

    @v1.get(
        "/cases",
        summary="Your cases (a supervisor's: all), newest first, a page at a time",
        responses=LIST_ERRORS,
    )
    async def list_cases(
        agent: Agent,
        filters: Annotated[CaseFilters, Query()],
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> CasePage:
        """Cases newest first (by creation, then id). Filters narrow what the caller may see and
        never widen it; repeat `state`, `priority` or `channel` to allow several values. Follow
        `next_cursor` with the same filters for the next page: a traversal returns every case
        that existed when it began exactly once."""
        engine = engine_or_503()
        digest = fingerprint({"list": "cases", **filters.model_dump()})
        after = _after(cursor, digest, CASE_KEY)
        chosen = page(
            (c for c in _cases_of(engine, filters) if sees(agent, c) and filters.admit(c)),
            _case_key,
            limit=limit,
            after=after,
            filters=digest,
            newest_first=True,
        )
        return CasePage(items=chosen.items, next_cursor=chosen.next_cursor)

    @v1.get(
        "/cases/{case_id}",
        summary="One case",
        responses={403: CASE_ERRORS[403], 404: CASE_ERRORS[404]},
    )
    async def get_case(agent: Agent, case_id: uuid.UUID) -> Case:
        engine = engine_or_503()
        case = engine.case(case_id)
        if case is None:
            raise ProblemError(
                404,
                "no such case (a resolved case leaves the router TRIAGE_ROUTER_RETENTION_DAYS "
                "after its resolution; cases.events keeps its history)",
            )
        if not sees(agent, case):
            raise ProblemError(403, NOT_YOUR_CASE, kind="not-your-case")
        return case

    case_responses = CASE_ERRORS

    @v1.post("/cases/{case_id}/accept", summary="Accept an offer", responses=case_responses)
    async def accept(agent: Agent, case_id: uuid.UUID, key: IdempotencyKey = None) -> Case:
        result: Case = await run(agent, Action.ACCEPT, key=key, case_id=case_id)
        return result

    @v1.post("/cases/{case_id}/decline", summary="Decline an offer", responses=case_responses)
    async def decline(
        agent: Agent, case_id: uuid.UUID, body: ReasonBody | None = None, key: IdempotencyKey = None
    ) -> Case:
        reason = body.reason if body else None
        result: Case = await run(agent, Action.DECLINE, key=key, case_id=case_id, reason=reason)
        return result

    @v1.post(
        "/cases/{case_id}/respond",
        summary="Record a reply to the customer (stops the response clocks)",
        responses=case_responses,
    )
    async def respond(
        agent: Agent,
        case_id: uuid.UUID,
        body: RespondBody | None = None,
        key: IdempotencyKey = None,
    ) -> Case:
        chars = body.chars if body else None
        result: Case = await run(agent, Action.RESPOND, key=key, case_id=case_id, chars=chars)
        return result

    @v1.post(
        "/cases/{case_id}/wait",
        summary="Wait on the customer (pauses the resolution clock)",
        responses=case_responses,
    )
    async def wait(
        agent: Agent, case_id: uuid.UUID, body: ReasonBody | None = None, key: IdempotencyKey = None
    ) -> Case:
        reason = body.reason if body else None
        result: Case = await run(agent, Action.WAIT, key=key, case_id=case_id, reason=reason)
        return result

    @v1.post(
        "/cases/{case_id}/resume", summary="Stop waiting on the customer", responses=case_responses
    )
    async def resume(agent: Agent, case_id: uuid.UUID, key: IdempotencyKey = None) -> Case:
        result: Case = await run(agent, Action.RESUME, key=key, case_id=case_id)
        return result

    @v1.post("/cases/{case_id}/resolve", summary="Resolve the case", responses=case_responses)
    async def resolve(
        agent: Agent,
        case_id: uuid.UUID,
        body: ResolveBody | None = None,
        key: IdempotencyKey = None,
    ) -> Case:
        note = body.note if body else None
        result: Case = await run(agent, Action.RESOLVE, key=key, case_id=case_id, note=note)
        return result

    @v1.post(
        "/cases/{case_id}/transfer",
        summary="Transfer to another team or agent",
        responses=case_responses,
    )
    async def transfer(
        agent: Agent, case_id: uuid.UUID, body: TransferBody, key: IdempotencyKey = None
    ) -> Case:
        if body.to_team is None and body.to_agent is None:
            raise ProblemError(422, TRANSFER_TARGET, kind="invalid-command")
        result: Case = await run(
            agent,
            Action.TRANSFER,
            key=key,
            case_id=case_id,
            to_team=body.to_team,
            to_agent=body.to_agent,
            reason=body.reason,
        )
        return result

    @v1.post(
        "/cases/{case_id}/escalate",
        summary="Escalate to the next tier (senior, then supervisor)",
        responses=case_responses,
    )
    async def escalate(
        agent: Agent, case_id: uuid.UUID, body: ReasonBody | None = None, key: IdempotencyKey = None
    ) -> Case:
        reason = body.reason if body else None
        result: Case = await run(agent, Action.ESCALATE, key=key, case_id=case_id, reason=reason)
        return result

    @v1.post(
        "/cases/{case_id}/csat",
        summary="Supervisor: record the customer's satisfaction score after resolution",
        responses=case_responses,
    )
    async def csat(
        agent: Supervisor, case_id: uuid.UUID, body: CsatBody, key: IdempotencyKey = None
    ) -> Case:
        result: Case = await run(agent, Action.CSAT, key=key, case_id=case_id, score=body.score)
        return result

    @v1.post(
        "/cases/{case_id}/reassign",
        summary="Supervisor: assign the case to an agent",
        responses=case_responses,
    )
    async def reassign(
        agent: Supervisor, case_id: uuid.UUID, body: ReassignBody, key: IdempotencyKey = None
    ) -> Case:
        result: Case = await run(
            agent, Action.REASSIGN, key=key, case_id=case_id, to_agent=body.agent_id
        )
        return result

    @v1.post(
        "/cases/{case_id}/relabel",
        summary="Supervisor: correct the case's tags",
        responses=case_responses,
    )
    async def relabel(
        agent: Supervisor, case_id: uuid.UUID, body: Labels, key: IdempotencyKey = None
    ) -> Case:
        result: Case = await run(agent, Action.RELABEL, key=key, case_id=case_id, labels=body)
        return result

    @v1.post(
        "/incidents",
        summary="Supervisor: tag the cases of the given messages with an incident",
        responses={403: CASE_ERRORS[403]},
    )
    async def tag_incident(
        agent: Supervisor, body: IncidentBody, key: IdempotencyKey = None
    ) -> IncidentTagged:
        """Ties every case holding one of `event_ids` (for example the `member_ids` of an
        emerging cluster) to the incident, open or resolved: each is published with an
        `incident_tagged` event and agents see the reference on the case. Event ids of no case
        the router keeps are answered in `missing`; cases already carrying the same reference
        and note in `unchanged`."""
        incident = IncidentRef(reference=body.reference, note=body.note)
        result: IncidentTagged = await run(
            agent,
            Action.TAG_INCIDENT,
            key=key,
            incident=incident,
            event_ids=tuple(body.event_ids),
        )
        return result

    @v1.get("/teams", summary="The teams with their categories and agents")
    async def teams(agent: Agent) -> list[TeamView]:
        engine = engine_or_503()
        members: dict[str, list[TeamMember]] = {team_id: [] for team_id in engine.teams}
        for state in sorted(engine.agents.values(), key=lambda s: s.profile.name):
            profile = state.profile
            members.setdefault(profile.team, []).append(
                TeamMember(
                    id=profile.id, name=profile.name, tier=profile.tier, presence=state.presence
                )
            )
        return [
            TeamView(
                id=team.id,
                name=team.name,
                categories=list(team.categories),
                agents=members.get(team.id, []),
            )
            for team in engine.teams.values()
        ]

    @v1.get("/floor", summary="Supervisor: case counts, service-level attainment, breaches")
    async def floor(agent: Supervisor) -> FloorView:
        engine = engine_or_503()
        return floor_view(
            (record.case for record in engine.records.values()),
            datetime.now(UTC),
            engine.agents.values(),
        )

    @v1.get(
        "/review",
        summary="Supervisor: cases whose tags need review, oldest first",
        responses=LIST_ERRORS,
    )
    async def review_lane(
        agent: Supervisor,
        team: Annotated[str | None, Query(max_length=40)] = None,
        hold: Annotated[bool | None, Query(description="Only held (or only routed) cases.")] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> ReviewPage:
        """Cases with tags the classifier was unsure of and no supervisor has reviewed yet,
        oldest first, each with the messages to review and the runner-up of every tag.
        `POST /v1/cases/{id}/relabel` reviews one: with labels it corrects them, with `{}` it
        confirms them; a held case is then offered."""
        engine = engine_or_503()
        now = datetime.now(UTC)
        digest = fingerprint({"list": "review", "team": team, "hold": hold})
        after = _after(cursor, digest, CASE_KEY)
        pending = (
            record.case
            for record in engine.records.values()
            if _in_review(record.case)
            and (team is None or record.case.team == team)
            and (hold is None or _held_for_review(record.case) == hold)
        )
        chosen = page(
            pending, _review_key, limit=limit, after=after, filters=digest, newest_first=False
        )
        return ReviewPage(
            items=[_review_item(case, now) for case in chosen.items],
            next_cursor=chosen.next_cursor,
        )

    @v1.get("/queues", summary="Supervisor: waiting cases per team, by priority")
    async def queues(
        agent: Supervisor, team: str | None = Query(default=None, max_length=40)
    ) -> list[QueueView]:
        engine = engine_or_503()
        now = datetime.now(UTC)
        views = []
        for team_id, queue in engine.queues.items():
            if team is not None and team_id != team:
                continue
            entries = []
            for case_id in queue:
                case = engine.case(case_id)
                if case is None:
                    continue
                entries.append(
                    QueueEntry(
                        case_id=case.case_id,
                        priority=case.priority,
                        category=case.category,
                        channel=case.channel,
                        waiting_seconds=(now - (case.queued_at or case.created_at)).total_seconds(),
                        required_tier=case.required_tier,
                    )
                )
            views.append(
                QueueView(
                    team=team_id,
                    depth=len(entries),
                    by_priority={p: sum(e.priority == p for e in entries) for p in Priority},
                    oldest_seconds={
                        p: max((e.waiting_seconds for e in entries if e.priority == p), default=0)
                        for p in Priority
                    },
                    cases=entries[:200],
                )
            )
        return views

    @v1.get(
        "/agents",
        summary="Supervisor: the roster with presence and load, by id, a page at a time",
        responses=LIST_ERRORS,
    )
    async def agents(
        agent: Supervisor,
        filters: Annotated[AgentFilters, Query()],
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> AgentPage:
        """Agents by id. Follow `next_cursor` with the same filters for the next page."""
        engine = engine_or_503()
        digest = fingerprint({"list": "agents", **filters.model_dump()})
        after = _after(cursor, digest, (str,))
        chosen = page(
            (
                agent_id
                for agent_id, state in engine.agents.items()
                if filters.admit(state.profile, state.presence)
            ),
            lambda agent_id: (agent_id,),
            limit=limit,
            after=after,
            filters=digest,
            newest_first=False,
        )
        return AgentPage(
            items=[_agent_view(engine, agent_id) for agent_id in chosen.items],
            next_cursor=chosen.next_cursor,
        )

    @v1.put("/agents/{agent_id}", summary="Supervisor: add or change an agent")
    async def put_agent(
        agent: Supervisor, agent_id: str, body: AgentProfile, key: IdempotencyKey = None
    ) -> Any:
        if body.id != agent_id:
            raise ProblemError(422, "the body's id must match the path", kind="invalid-command")
        if body.token_sha256 is not None:
            raise ProblemError(422, "tokens are set in the roster file", kind="invalid-command")
        return await run(agent, Action.UPSERT_AGENT, key=key, profile=body)

    @v1.delete(
        "/agents/{agent_id}",
        summary="Supervisor: remove an agent (work returns to queue)",
        responses={404: {"model": Problem, "description": "No such agent."}},
    )
    async def delete_agent(agent: Supervisor, agent_id: str, key: IdempotencyKey = None) -> Any:
        return await run(agent, Action.REMOVE_AGENT, key=key, to_agent=agent_id)

    @v1.put(
        "/agents/{agent_id}/presence",
        summary="Supervisor: set an agent's presence",
        responses={404: {"model": Problem, "description": "No such agent."}},
    )
    async def put_presence(
        agent: Supervisor, agent_id: str, body: PresenceBody, key: IdempotencyKey = None
    ) -> Any:
        return await run(agent, Action.PRESENCE, key=key, to_agent=agent_id, presence=body.presence)

    @v1.get(
        "/stream",
        response_class=EventSourceResponse,
        summary="Live case events: your offers and cases (a supervisor's: all)",
    )
    async def stream(agent: Agent, request: Request) -> AsyncIterator[ServerSentEvent]:
        engine = engine_or_503()
        queue = runtime.subscribe(agent.id, agent.is_supervisor, token_sha256=agent.token_sha256)
        try:
            held = [c.model_dump(mode="json") for c in engine.held_cases(agent.id)]
            yield ServerSentEvent(event="snapshot", data={"agent": agent.id, "cases": held})
            while True:
                item = await queue.get()
                if item is None:
                    return
                event, payload = item
                # The stream speaks for the agent as they are now, not as they were when it
                # opened: removed, rotated or demoted, it ends.
                now = runtime.engine
                state = now.agents.get(agent.id) if now is not None else None
                if state is None or state.profile.token_sha256 != agent.token_sha256:
                    return
                if agent.is_supervisor and not state.profile.is_supervisor:
                    return
                yield ServerSentEvent(
                    event=event.type.value, id=str(event.event_id), raw_data=payload.decode()
                )
        finally:
            runtime.unsubscribe(queue)

    app.include_router(v1)

    app.mount("/console", ConsoleFiles(directory=CONSOLE_DIR, html=True), name="console")

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/console/")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> Response:
        ready = runtime.ready and runtime.engine is not None
        body = {"status": "ok" if ready else "unavailable"}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(runtime.metrics_text(), media_type=CONTENT_TYPE_LATEST)

    return app


class ConsoleFiles(StaticFiles):
    """The console's files, with headers that keep it to its own scripts and this origin."""

    async def get_response(self, path: str, scope: Any) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        # Always revalidate, so an upgraded router never runs against a stale console.
        response.headers["Cache-Control"] = "no-cache"
        return response


def _agent_view(engine: Engine, agent_id: str) -> AgentView:
    state = engine.agents.get(agent_id)
    if state is None:
        raise ProblemError(404, "no such agent")
    return AgentView(
        # Token hashes are never served: with one, a token can be guessed offline.
        profile=state.profile.model_copy(update={"token_sha256": None}),
        presence=state.presence,
        load=dict(state.load),
        utilisation=round(state.utilisation, 4),
        cases=list(state.holding),
        hostile_streak=state.hostile_streak,
        lapsed_offers=state.lapsed_offers,
        away_reason=state.away_reason,
    )


def metrics_payload(registry: Any) -> bytes:
    """The Prometheus text exposition of a registry."""
    return bytes(generate_latest(registry))
