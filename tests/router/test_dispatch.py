"""The agent API's dispatch by floor, on plain ASGI apps: who serves a request, what a
forwarded request does, and the answers when the floor's worker cannot be reached (the whole
path between two router workers is tests/router/test_floors_service.py)."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from services.router.dispatch import FORWARDED, FloorDispatch
from services.router.roster import hash_token


@dataclass
class FakeFloor:
    owns_inbox: bool
    ready: bool


def floor_app(name: str) -> Starlette:
    async def answer(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"{name} {request.url.path}")

    return Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST"])])


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dispatch(*, front: FakeFloor, back: FakeFloor, back_owner: str | None) -> FloorDispatch:
    floors = {hash_token("t-amy"): "front", hash_token("t-bill"): "back"}
    return FloorDispatch(
        apps={"front": floor_app("front"), "back": floor_app("back")},
        runtimes={"front": front, "back": back},
        floor_of_token=floors.get,
        owner=lambda floor: back_owner if floor == "back" else None,
        max_body_bytes=1024,
        self_url="http://127.0.0.1:1",
    )


async def call(app: FloorDispatch, path: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://router") as http:
        return await http.get(path, headers=headers)


async def test_a_caller_is_served_by_their_floor_when_it_is_routed_here() -> None:
    app = dispatch(front=FakeFloor(True, True), back=FakeFloor(True, True), back_owner="http://x:1")
    assert (await call(app, "/v1/me", authorization="Bearer t-amy")).text == "front /v1/me"
    assert (await call(app, "/v1/me", authorization="Bearer t-bill")).text == "back /v1/me"
    # No token, or one no agent has: the first floor routed here answers (401 in the API).
    assert (await call(app, "/console/")).text == "front /console/"
    assert (await call(app, "/v1/me", authorization="Bearer nobody")).text == "front /v1/me"


async def test_a_floor_routed_elsewhere_unreachable_is_a_502_to_retry() -> None:
    port = closed_port()
    app = dispatch(
        front=FakeFloor(True, True),
        back=FakeFloor(False, False),
        back_owner=f"http://127.0.0.1:{port}",
    )
    response = await call(app, "/v1/me", authorization="Bearer t-bill")
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/floor-unreachable")
    assert response.headers["retry-after"] == "2"


async def test_a_forwarded_request_is_never_forwarded_again() -> None:
    app = dispatch(
        front=FakeFloor(True, True), back=FakeFloor(False, False), back_owner="http://x:1"
    )
    headers = {"authorization": "Bearer t-bill", FORWARDED.decode(): "http://other:2"}
    # Served by the floor's own app here, which answers 503 not-ready in the real API.
    assert (await call(app, "/v1/me", **headers)).text == "back /v1/me"
    # No worker known for the floor: the same.
    nowhere = dispatch(front=FakeFloor(True, True), back=FakeFloor(False, False), back_owner=None)
    assert (await call(nowhere, "/v1/me", authorization="Bearer t-bill")).text == "back /v1/me"


async def test_ready_means_routing_a_floor_and_every_floor_routed_is_loaded() -> None:
    routed_one = dispatch(
        front=FakeFloor(True, True), back=FakeFloor(False, False), back_owner=None
    )
    assert (await call(routed_one, "/readyz")).status_code == 200
    loading = dispatch(front=FakeFloor(True, True), back=FakeFloor(True, False), back_owner=None)
    assert (await call(loading, "/readyz")).status_code == 503
    standby = dispatch(front=FakeFloor(False, False), back=FakeFloor(False, False), back_owner=None)
    assert (await call(standby, "/readyz")).status_code == 503
