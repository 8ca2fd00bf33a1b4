"""The router's forwarding of /v1/trends to the trends API, which the console reaches it by:
only the Authorization header and the query string go on, the answer comes back as it was,
and a trends API that is not configured, not listening or silent is a problem answer in
bounded time, never a hang. The upstream here is a real HTTP server on a local port."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.common.broker import free_port
from services.router.api import create_api
from services.router.openapi import _NoRuntime
from services.router.trends_proxy import trends_proxy
from services.stack import SERVICES, Supervisor, service

pytestmark = pytest.mark.timeout(60)


class Echo(BaseHTTPRequestHandler):
    """Answers what it was asked: the path with its query and the headers it got."""

    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "headers": dict(self.headers.items())}).encode()
        status = 401 if self.headers.get("Authorization") != "Bearer dev-kate" else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "upstream=1")
        if status == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def router_app(base_url: str | None, **options: Any) -> FastAPI:
    """The agent API (its problem handlers) with the forwarding routes, as the router has it."""
    app = create_api(_NoRuntime())
    app.include_router(trends_proxy(base_url, **options))
    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router")


async def test_forwards_the_token_and_the_query_only(upstream: str) -> None:
    async with client(router_app(upstream)) as http:
        answer = await http.get(
            "/v1/trends/emerging/abc-1",
            params={"window": "5m", "tag": "billing"},
            headers={"Authorization": "Bearer dev-kate", "Cookie": "session=1", "X-Other": "x"},
        )
        assert answer.status_code == 200, answer.text
        seen = answer.json()
        assert seen["path"] == "/v1/trends/emerging/abc-1?window=5m&tag=billing"
        headers = {k.lower() for k in seen["headers"]}
        assert "authorization" in headers
        assert not headers & {"cookie", "x-other"}
        assert "set-cookie" not in answer.headers

        root = await http.get("/v1/trends", headers={"Authorization": "Bearer dev-kate"})
        assert root.json()["path"] == "/v1/trends"

        refused = await http.get("/v1/trends/surges", headers={"Authorization": "Bearer nope"})
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"


async def test_paths_outside_the_trends_api_are_not_forwarded(upstream: str) -> None:
    async with client(router_app(upstream)) as http:
        for path in ("/v1/trends/../metrics", "/v1/trends/%2e%2e/metrics", "/v1/trends/a.b"):
            answer = await http.get(path, headers={"Authorization": "Bearer dev-kate"})
            assert answer.status_code == 404, (path, answer.text)


async def test_not_configured_is_a_503_problem() -> None:
    async with client(router_app(None)) as http:
        answer = await http.get("/v1/trends/surges", params={"active": "true"})
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["status"] == 503
    assert "TRIAGE_ROUTER_TRENDS_URL" in body["detail"]
    assert "retry-after" not in answer.headers, "waiting does not configure it"


async def test_a_trends_api_that_is_down_or_silent_is_a_problem_in_bounded_time() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    async with client(router_app(closed)) as http:
        answer = await http.get("/v1/trends")
    assert answer.status_code == 502
    assert answer.json()["detail"] == "the trends service cannot be reached"

    # Listens but never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        base = f"http://127.0.0.1:{silent.getsockname()[1]}"
        app = router_app(base, timeout=httpx.Timeout(0.5, connect=0.5))
        started = time.monotonic()
        async with client(app) as http:
            answer = await http.get("/v1/trends")
        assert time.monotonic() - started < 5
    assert answer.status_code == 504
    assert answer.headers["content-type"] == "application/problem+json"


def test_triage_up_tells_the_router_where_the_trends_api_listens() -> None:
    supervisor = Supervisor({"PATH": "/bin"})
    for spec in SERVICES:
        supervisor.add(spec, port=spec.default_port + 100)
    env = supervisor.child_environment()
    assert (
        env["TRIAGE_ROUTER_TRENDS_URL"]
        == f"http://127.0.0.1:{service('trends').default_port + 100}"
    )
    assert env["PATH"] == "/bin"

    chosen = Supervisor({"TRIAGE_ROUTER_TRENDS_URL": "http://trends.internal:9000"})
    chosen.add(service("trends"), port=8084)
    assert chosen.child_environment()["TRIAGE_ROUTER_TRENDS_URL"] == "http://trends.internal:9000"
