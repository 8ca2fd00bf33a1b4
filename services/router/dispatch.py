"""The agent API of a router with floors: each request is served for its caller's floor.

A roster with several floors gives each floor its own engine, inbox partition and agent API
app; a worker routes the floors whose partitions it holds. Every worker answers every agent,
so a load balancer may send any request to any worker:

* the caller's floor is that of their team, from their token (tokens are the roster file's);
* a floor routed here is served by its app;
* a floor routed by another worker is forwarded there (its URL comes with the partition
  assignment: ``TRIAGE_ROUTER_ADVERTISED_URL``), streams included, and the answer relayed; a
  forwarded request is never forwarded again, so two workers that disagree answer 503 rather
  than pass it back and forth;
* a request without a known token, and the pages that need none (console, OpenAPI,
  metrics), go to the app of the first floor routed here, which answers them (401 where a
  token is needed).

``/readyz`` is ready when the worker routes at least one floor and each of them is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Protocol

import httpx
import structlog
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.problems import problem_response
from services.router.roster import hash_token

log = structlog.get_logger(__name__)

FORWARDED = b"x-triage-forwarded-by"
# Headers that describe one connection, not the message (RFC 9110 7.6.1), and the Host the
# owner sets for itself.
NOT_FORWARDED = {
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
    b"host",
}
# A command waits for the router up to its own timeout (at most 120 s); a stream has no end.
CALL_TIMEOUT = httpx.Timeout(150.0, connect=3.0)
STREAM_TIMEOUT = httpx.Timeout(None, connect=3.0)
STREAM_PATH = "/v1/stream"


class FloorRuntime(Protocol):
    """What the dispatch reads of a floor's runtime."""

    @property
    def owns_inbox(self) -> bool: ...

    @property
    def ready(self) -> bool: ...


class FloorDispatch:
    """An ASGI app that serves each request with its caller's floor (see the module)."""

    def __init__(
        self,
        *,
        apps: Mapping[str, ASGIApp],
        runtimes: Mapping[str, FloorRuntime],
        floor_of_token: Callable[[str], str | None],
        owner: Callable[[str], str | None],
        max_body_bytes: int,
        self_url: str = "",
    ) -> None:
        self.apps = apps
        self.runtimes = runtimes
        self.floor_of_token = floor_of_token  # sha256 of a token -> its agent's floor
        self.owner = owner  # floor -> URL of the worker routing it, if known
        self.max_body_bytes = max_body_bytes
        self.self_url = self_url.rstrip("/")
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            await self._default()(scope, receive, send)
            return
        if scope["path"] == "/readyz":
            ready = self.ready
            body = {"status": "ok" if ready else "unavailable"}
            await JSONResponse(body, status_code=200 if ready else 503)(scope, receive, send)
            return
        floor = self._floor(scope)
        if floor is None:
            await self._default()(scope, receive, send)
            return
        runtime = self.runtimes[floor]
        url = None if runtime.owns_inbox or _forwarded(scope) else self.owner(floor)
        if url is None or url.rstrip("/") == self.self_url:
            await self.apps[floor](scope, receive, send)  # routed here, or 503 not ready
            return
        await self._forward(url.rstrip("/"), floor, scope, receive, send)

    @property
    def ready(self) -> bool:
        """This worker routes a floor, and every floor it routes is ready."""
        routed = [runtime for runtime in self.runtimes.values() if runtime.owns_inbox]
        return bool(routed) and all(runtime.ready for runtime in routed)

    def _default(self) -> ASGIApp:
        for floor, runtime in self.runtimes.items():
            if runtime.owns_inbox:
                return self.apps[floor]
        return next(iter(self.apps.values()))

    def _floor(self, scope: Scope) -> str | None:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and token:
                    return self.floor_of_token(hash_token(token.strip()))
                return None
        return None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._client is not None:
                    await self._client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=CALL_TIMEOUT, follow_redirects=False)
        return self._client

    async def _forward(
        self, url: str, floor: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """The request sent to the worker routing ``floor``, and its answer relayed as it
        comes (a live stream included) until either side is done."""
        body = await _read_body(receive, self.max_body_bytes)
        if body is None:
            refused = problem_response(413, "request body too large", instance=scope["path"])
            await refused(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in NOT_FORWARDED]
        headers.append((FORWARDED, (self.self_url or "router").encode()))
        query = scope.get("query_string", b"").decode("latin-1")
        target = url + scope["path"] + (f"?{query}" if query else "")
        streaming = scope["path"] == STREAM_PATH
        request = self.client.build_request(
            scope["method"],
            target,
            headers=headers,
            content=body,
            timeout=STREAM_TIMEOUT if streaming else CALL_TIMEOUT,
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            log.warning("floor's router unreachable", floor=floor, url=url, error=repr(exc))
            unreachable = problem_response(
                502,
                f"the router of floor '{floor}' did not answer; retry",
                instance=scope["path"],
                kind="floor-unreachable",
                headers={"Retry-After": "2"},
            )
            await unreachable(scope, receive, send)
            return
        try:
            await _relay(response, receive, send)
        finally:
            await response.aclose()


def _forwarded(scope: Scope) -> bool:
    return any(name == FORWARDED for name, _ in scope["headers"])


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None once it is over ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _relay(response: httpx.Response, receive: Receive, send: Send) -> None:
    """Send the owner's answer on; stop when it ends or the caller goes away."""
    headers = [(k, v) for k, v in response.headers.raw if k.lower() not in NOT_FORWARDED]

    async def copy() -> None:
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def caller_gone() -> None:
        message: Message = {"type": ""}
        while message["type"] != "http.disconnect":
            message = await receive()

    copying = asyncio.ensure_future(copy())
    watching = asyncio.ensure_future(caller_gone())
    try:
        await asyncio.wait({copying, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (copying, watching):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if copying.done() and not copying.cancelled() and copying.exception() is not None:
        raise copying.exception()  # type: ignore[misc]
