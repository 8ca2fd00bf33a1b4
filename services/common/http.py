"""HTTP plumbing the services' APIs share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.problems import problem_response


class BodyLimit:
    """Reads the request body up to a per-path limit before the application sees it.

    A body over the limit (declared or streamed) is answered 413 without being read further;
    otherwise the buffered body is replayed to the application.
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        too_large = problem_response(
            413, f"the body is larger than {limit} bytes", instance=scope["path"]
        )
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                await too_large(scope, receive, send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class BodyTooLarge(Exception):
    """The request body is (or says it is) larger than the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is larger than {limit} bytes")
        self.limit = limit


class BodyTimeout(Exception):
    """The request body did not arrive within the deadline."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"the body was not received within {timeout_s:g} s")
        self.timeout_s = timeout_s


async def read_body(request: Request, *, limit: int, timeout_s: float) -> bytes:
    """The request body, read only now: at most ``limit`` bytes, within ``timeout_s`` seconds.

    A declared length over the limit is refused before anything is read, a streamed body as soon
    as it passes the limit. Raises :class:`BodyTooLarge`, :class:`BodyTimeout`, or Starlette's
    ``ClientDisconnect`` when the client goes away.
    """
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout(timeout_s) from None
    return b"".join(chunks)
