"""The trends API for supervisors: volumes over time, surges and emerging clusters.

Thin: authenticate, read the state under its lock, shape the answer for a chart. Supervisors
authenticate as on the router's agent API (``Authorization: Bearer <agent token>``, checked
against the roster's supervisors).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AwareDatetime, BaseModel, Field

from services.common.messages import Category, Channel, DifficultType, Sentiment
from services.trends.access import Access
from services.trends.clusters import Emerging
from services.trends.surges import Surge
from services.trends.windows import SPAN, WIDTH, Bucket, Granularity, Key, totals
from services.trends.worker import TrendsService

bearer = HTTPBearer(auto_error=False, description="A supervisor's agent API token.")
UNAUTHORIZED = "missing or unknown supervisor token"
TAGS = frozenset(
    {c.value for c in Category} | {s.value for s in Sentiment} | {d.value for d in DifficultType}
)


class BucketView(BaseModel):
    """One bucket: the total and its breakdown by each dimension (what a stacked chart draws)."""

    start: datetime
    total: int
    category: dict[str, int]
    channel: dict[str, int]
    sentiment: dict[str, int]
    difficult: dict[str, int]


class TrendsView(BaseModel):
    """Volumes over a period, oldest bucket first, with the mix over the whole period."""

    window: Granularity
    since: datetime
    until: datetime
    filters: dict[str, str]
    buckets: list[BucketView]
    totals: BucketView
    clock: datetime | None = Field(description="The trends' clock (newest message or now).")


class SurgeView(BaseModel):
    """A surge, active or over."""

    surge_id: str
    category: str
    channel: str
    window_start: datetime
    detected_at: datetime
    ended_at: datetime | None
    active: bool
    count: int
    expected: float
    ratio: float
    p_value: float
    baseline: str
    peak_count: int


class RepresentativeView(BaseModel):
    event_id: str
    excerpt: str
    at: datetime
    category: str
    channel: str


class ClusterView(BaseModel):
    """An emerging cluster. ``member_ids`` are the event ids of its latest members (at most
    500): the router finds their cases."""

    cluster_id: str
    model_version: str
    size: int
    recent: int
    expected_recent: float
    growth: float
    first_seen: datetime
    last_seen: datetime
    top_terms: list[str]
    categories: dict[str, int]
    channels: dict[str, int]
    representatives: list[RepresentativeView]
    member_ids: list[str] | None = None


def _bucket_view(bucket: Bucket) -> BucketView:
    return BucketView(
        start=bucket.start,
        total=bucket.total,
        category=bucket.category,
        channel=bucket.channel,
        sentiment=bucket.sentiment,
        difficult=bucket.difficult,
    )


def _surge_view(surge: Surge) -> SurgeView:
    return SurgeView(
        surge_id=surge.surge_id,
        category=surge.category,
        channel=surge.channel,
        window_start=surge.window_start,
        detected_at=surge.detected_at,
        ended_at=surge.ended_at,
        active=surge.ended_at is None,
        count=surge.count,
        expected=surge.expected,
        ratio=round(surge.ratio, 2),
        p_value=surge.p_value,
        baseline=surge.baseline,
        peak_count=surge.peak_count,
    )


def _cluster_view(version: str, report: Emerging, *, members: bool) -> ClusterView:
    return ClusterView(
        cluster_id=report.cluster_id,
        model_version=version,
        size=report.size,
        recent=report.recent,
        expected_recent=report.expected_recent,
        growth=report.growth,
        first_seen=report.first_seen,
        last_seen=report.last_seen,
        top_terms=list(report.top_terms),
        categories=report.categories,
        channels=report.channels,
        representatives=[
            RepresentativeView(
                event_id=r.event_id,
                excerpt=r.excerpt,
                at=r.at,
                category=r.category,
                channel=r.channel,
            )
            for r in report.representatives
        ],
        member_ids=list(report.member_ids) if members else None,
    )


def _problem(status: int, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": detail, "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
        headers=headers or None,
    )


class Refused(Exception):
    def __init__(self, status: int, detail: str, **headers: str) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


async def current_supervisor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The supervisor whose bearer token this is; 401 for anyone else (the same words whatever
    was wrong, so a caller learns nothing)."""
    access: Access = request.app.state.access
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Refused(401, UNAUTHORIZED, **{"WWW-Authenticate": "Bearer"})
    agent = access.supervisor_of(credentials.credentials)
    if agent is None:
        raise Refused(401, UNAUTHORIZED, **{"WWW-Authenticate": "Bearer"})
    return agent


Supervisor = Annotated[str, Depends(current_supervisor)]


def create_api(service: TrendsService, access: Access) -> FastAPI:
    """The trends API over a running service."""
    api = FastAPI(
        title="Complaint triage: trends",
        version="1",
        description="Volumes over time, surges and emerging issues, for supervisors. "
        "Authenticate with `Authorization: Bearer <supervisor's agent token>`.",
    )

    api.state.access = access

    @api.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return _problem(exc.status, exc.detail, **exc.headers)

    @api.get("/v1/trends", response_model=TrendsView)
    async def trends(
        _: Supervisor,
        window: Annotated[Literal["5m", "1h"], Query(description="Bucket width.")] = "1h",
        tag: Annotated[
            str | None, Query(description="Only messages with this category, sentiment or type.")
        ] = None,
        channel: Annotated[Channel | None, Query()] = None,
        team: Annotated[
            str | None, Query(description="Only the categories this team owns.")
        ] = None,
        since: Annotated[AwareDatetime | None, Query()] = None,
        until: Annotated[AwareDatetime | None, Query()] = None,
    ) -> Any:
        granularity = Granularity(window)
        if tag is not None and tag not in TAGS:
            raise Refused(422, f"unknown tag {tag!r}")
        categories = None
        if team is not None:
            categories = access.categories_of(team)
            if categories is None:
                raise Refused(422, f"unknown team {team!r}")
        channel_value = channel.value if channel is not None else None

        def admit(key: Key) -> bool:
            category, on, sentiment, difficult = key
            if tag is not None and tag not in (category, sentiment, difficult):
                return False
            if channel_value is not None and on != channel_value:
                return False
            return categories is None or category in categories

        async with service.lock:
            clock = service.state.clock
            end = until or clock
            if end is None:
                end = datetime.now().astimezone()
            # The span's worth of buckets, the one holding ``until`` included.
            earliest = end - SPAN[granularity] + WIDTH[granularity]
            start = since or earliest
            if start > end:
                raise Refused(422, "since is after until")
            start = max(start, earliest)
            buckets = service.state.buckets(granularity, since=start, until=end, admit=admit)
        filters = {
            name: value
            for name, value in (
                ("tag", tag),
                ("channel", channel_value),
                ("team", team),
            )
            if value is not None
        }
        return TrendsView(
            window=granularity,
            since=start,
            until=end,
            filters=filters,
            buckets=[_bucket_view(b) for b in buckets],
            totals=_bucket_view(totals(buckets)),
            clock=clock,
        )

    @api.get("/v1/trends/surges", response_model=list[SurgeView])
    async def surges(
        _: Supervisor,
        active: Annotated[
            bool | None, Query(description="Only active (or only ended) ones.")
        ] = None,
        category: Annotated[Category | None, Query()] = None,
        channel: Annotated[str | None, Query(description="A channel or 'all'.")] = None,
    ) -> Any:
        async with service.lock:
            history = service.state.surge_history()
        return [
            _surge_view(s)
            for s in history
            if (active is None or (s.ended_at is None) == active)
            and (category is None or s.category == category.value)
            and (channel is None or s.channel == channel)
        ]

    @api.get("/v1/trends/emerging", response_model=list[ClusterView])
    async def emerging(_: Supervisor) -> Any:
        async with service.lock:
            found = service.state.emerging()
        return [_cluster_view(version, report, members=False) for version, report in found]

    @api.get("/v1/trends/emerging/{cluster_id}", response_model=ClusterView)
    async def cluster(_: Supervisor, cluster_id: uuid.UUID) -> Any:
        async with service.lock:
            found = service.state.cluster(str(cluster_id))
            if found is None:
                raise Refused(404, "no such cluster (it may have gone quiet and been forgotten)")
            version, clusterer, live = found
            report = clusterer.report(live, service.state.clock or live.last_seen)
        return _cluster_view(version, report, members=True)

    @api.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        if service.ready:
            return JSONResponse({"status": "ready", "messages": service.state.observed})
        return JSONResponse({"status": "replaying"}, status_code=503)

    @api.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return api
