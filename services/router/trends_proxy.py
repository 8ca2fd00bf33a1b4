"""The trends API through the router: ``GET /v1/trends`` and ``GET /v1/trends/...`` forwarded to
the trends worker (``TRIAGE_ROUTER_TRENDS_URL``), so the console, served by the router, reaches
it on its own origin under its strict Content-Security-Policy.

Thin on purpose: the trends worker authenticates the supervisor (the same tokens) and shapes
the answers; the router forwards the Authorization header and the query string only, and turns
a trends worker that is not configured, not reachable or too slow into problem details, never
a hang.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import httpx
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.common.problems import ProblemError

log = structlog.get_logger(__name__)

#: Connecting is local and quick or not at all; the answers are computed in memory.
TIMEOUT = httpx.Timeout(10.0, connect=2.0)
#: The headers of the trends worker's answer that the caller gets back.
PASSED_BACK = ("content-type", "www-authenticate", "retry-after")
NOT_CONFIGURED = "the trends service is not configured on this router (TRIAGE_ROUTER_TRENDS_URL)"
#: The trends API's paths below /v1/trends: plain segments only, so no dot segment or encoded
#: slash reaches another path of the trends worker.
SUBPATH = re.compile(r"[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*")


def forwarded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """What the trends worker is told of the caller: their credentials, nothing else."""
    authorization = headers.get("authorization")
    return {"Authorization": authorization} if authorization else {}


def passed_back(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers of the trends worker's answer that mean something to the caller."""
    return {name: headers[name] for name in PASSED_BACK if name in headers}


def trends_proxy(base_url: str | None, *, timeout: httpx.Timeout = TIMEOUT) -> APIRouter:
    """The forwarding routes, to the trends worker at ``base_url`` (None: each answers 503)."""
    router = APIRouter()
    # One client for the process's life, made on first use inside the serving loop.
    clients: list[httpx.AsyncClient] = []

    def client() -> httpx.AsyncClient:
        if not clients:
            assert base_url is not None
            clients.append(
                httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, trust_env=False)
            )
        return clients[0]

    async def forward(request: Request, path: str) -> Response:
        if path and SUBPATH.fullmatch(path) is None:
            raise ProblemError(404, "Not Found")
        if base_url is None:
            raise ProblemError(503, NOT_CONFIGURED)
        target = "/v1/trends" + (f"/{path}" if path else "")
        try:
            answer = await client().get(
                target,
                params=request.url.query or None,
                headers=forwarded_headers(request.headers),
            )
        except httpx.TimeoutException as exc:
            log.warning("trends service timed out", path=target, error=type(exc).__name__)
            raise ProblemError(504, "the trends service did not answer in time") from exc
        except httpx.HTTPError as exc:
            log.warning("trends service unreachable", path=target, error=type(exc).__name__)
            raise ProblemError(502, "the trends service cannot be reached") from exc
        return Response(
            content=answer.content,
            status_code=answer.status_code,
            headers=passed_back(answer.headers),
        )

    @router.get("/v1/trends", include_in_schema=False)
    async def trends(request: Request) -> Response:
        return await forward(request, "")

    @router.get("/v1/trends/{path:path}", include_in_schema=False)
    async def trends_path(request: Request, path: str) -> Response:
        return await forward(request, path)

    return router
