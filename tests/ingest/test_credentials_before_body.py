"""Nobody makes the service read a body before they are known: a request without valid
credentials, or over its rate, is refused before any of its body is read; the body of a known
caller is read under the limit of the route it posts to, and within a deadline."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.ingest.auth import generate_key, hash_key
from tests.support.problems import assert_problem

pytestmark = pytest.mark.timeout(30)

MB = 1_048_576
CHUNK = 64 * 1024
KEY = generate_key()
SIGNED_KEY = generate_key()
SECRET = "body-order-signing-secret"
KEYS = {"known": hash_key(KEY), "signed": hash_key(SIGNED_KEY)}


class Streamed:
    """A request body sent in chunks, counting how many of them the service asked for."""

    def __init__(self, total: int, *, stall_s: float = 0.0) -> None:
        self.total = total
        self.stall_s = stall_s
        self.chunks_read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        while sent < self.total:
            self.chunks_read += 1
            size = min(CHUNK, self.total - sent)
            yield b"x" * size
            sent += size
            if self.stall_s:
                await asyncio.sleep(self.stall_s)

    @property
    def chunks(self) -> int:
        return -(-self.total // CHUNK)


@pytest.fixture
async def production(ingest_factory: Any) -> Any:
    async with ingest_factory(
        environment="production",
        api_keys=KEYS,
        hmac_secrets={"signed": SECRET},
        rate_limit_per_s=0.01,
        rate_limit_burst=2,
        body_read_timeout_s=0.5,
    ) as client:
        yield client


def _headers(key: str | None, media: str = "application/json") -> dict[str, str]:
    headers = {"Content-Type": media}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return headers


REFUSED_UNREAD = [
    ("no credentials", "/v1/feedback/chat", None, 4 * MB, 401),
    ("no credentials, within the limit", "/v1/feedback/chat", None, MB // 2, 401),
    ("no credentials, e-mail", "/v1/feedback/email", None, 4 * MB, 401),
    ("no credentials, batch", "/v1/feedback/batch", None, 4 * MB, 401),
    ("an unknown key", "/v1/feedback", "tk_unknown", 4 * MB, 401),
    ("a signed platform without a signature", "/v1/feedback", SIGNED_KEY, 4 * MB, 401),
    ("no route ends in /email", "/v1/anything/email", KEY, 4 * MB, 404),
    ("no route, without credentials", "/v1/feedback/chat/email", None, 4 * MB, 404),
]


@pytest.mark.parametrize(
    ("path", "key", "size", "status"),
    [case[1:] for case in REFUSED_UNREAD],
    ids=[case[0] for case in REFUSED_UNREAD],
)
async def test_a_request_refused_for_who_sent_it_is_refused_before_its_body_is_read(
    production: httpx.AsyncClient, path: str, key: str | None, size: int, status: int
) -> None:
    body = Streamed(size)
    media = "message/rfc822" if path.endswith("/email") else "application/json"
    response = await production.post(path, content=body, headers=_headers(key, media))
    assert response.status_code == status, response.text[:300]
    assert body.chunks_read <= 1, f"{body.chunks_read} of {body.chunks} chunks were read"


async def test_a_request_over_the_rate_is_refused_before_its_body_is_read(
    production: httpx.AsyncClient,
) -> None:
    event = {"id": "r-0", "channel": "web", "customer": {"id": "c"}, "text": "x"}
    for n in range(2):
        accepted = await production.post(
            "/v1/feedback", json={**event, "id": f"r-{n}"}, headers=_headers(KEY)
        )
        assert accepted.status_code == 202, accepted.text
    body = Streamed(MB // 2)
    response = await production.post("/v1/feedback/chat", content=body, headers=_headers(KEY))
    assert response.status_code == 429
    assert body.chunks_read <= 1, f"{body.chunks_read} of {body.chunks} chunks were read"


@pytest.mark.parametrize(
    ("path", "media", "limit"),
    [
        ("/v1/feedback", "application/json", MB),
        ("/v1/feedback/chat", "application/json", MB),
        ("/v1/feedback/batch", "application/json", 8 * MB),
        ("/v1/feedback/email", "message/rfc822", 10 * MB),
    ],
)
async def test_a_known_caller_gets_the_limit_of_its_route(
    production: httpx.AsyncClient, path: str, media: str, limit: int
) -> None:
    body = Streamed(limit + 4 * CHUNK)
    response = await production.post(path, content=body, headers=_headers(KEY, media))
    assert response.status_code == 413, response.text[:300]
    assert body.chunks_read <= limit // CHUNK + 1, "reading stops at the limit"


async def test_a_body_that_does_not_arrive_in_time_is_refused(
    production: httpx.AsyncClient,
) -> None:
    body = Streamed(3 * CHUNK, stall_s=2.0)
    started = time.perf_counter()
    response = await production.post("/v1/feedback", content=body, headers=_headers(KEY))
    elapsed = time.perf_counter() - started
    assert_problem(response, 408, None)
    assert elapsed < 1.5, f"answered after {elapsed:.1f} s"


async def test_a_known_caller_within_the_limit_is_accepted(production: httpx.AsyncClient) -> None:
    event = {"id": "ok-1", "channel": "web", "customer": {"id": "c"}, "text": "x" * 10_000}
    content = json.dumps(event).encode()

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 1000):
            yield content[start : start + 1000]

    response = await production.post("/v1/feedback", content=chunked(), headers=_headers(KEY))
    assert response.status_code == 202, response.text[:300]
