"""The most expensive bodies we can build within the size limits are refused without stalling the
event loop: while one is being refused, the liveness probe and an ordinary post still answer at
once (a stalled loop fails the probe, and the pod is restarted)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.ingest.conftest import DEV_AUTH
from tests.support.problems import assert_problem

pytestmark = pytest.mark.timeout(30)

MB = 1_048_576
# What "at once" means for a request on the same loop (broker acknowledgement included).
PROMPT_S = 0.1
EMAIL = {**DEV_AUTH, "Content-Type": "message/rfc822"}
JSON = {**DEV_AUTH, "Content-Type": "application/json"}


def empty_parts(total_bytes: int) -> bytes:
    """One boundary and as many empty MIME parts as fit: the standard parser builds an object
    for each before any part limit can be checked (about 100 µs a part)."""
    head = b'From: mallory@example.com\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
    part, tail = b"--b\r\n\r\n", b"--b--\r\n"
    return head + part * ((total_bytes - len(head) - len(tail)) // len(part)) + tail


def empty_items(total_bytes: int) -> bytes:
    """A batch of millions of ``[]`` items: cheap to send, seconds of JSON validation."""
    head, tail = b'{"items": [', b"]}"
    count = (total_bytes - len(head) - len(tail) + 1) // 3
    return head + b",".join([b"[]"] * count) + tail


async def streamed(body: bytes, chunk: int = MB) -> AsyncIterator[bytes]:
    """The body as a stream: the suite's own scan of what it sends skips streamed filler (it
    would otherwise parse the hostile body itself, on this loop)."""
    for start in range(0, len(body), chunk):
        yield body[start : start + chunk]


def ordinary_email() -> bytes:
    return (
        f"From: jane@example.com\r\nMessage-ID: <{uuid.uuid4()}@example.com>\r\n"
        "Subject: broken\r\n\r\nMy order arrived broken.\r\n"
    ).encode()


def ordinary_event() -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "channel": "web", "customer": {"id": "c"}, "text": "hi"}


async def _timed(call: Callable[[], Awaitable[httpx.Response]]) -> tuple[float, int]:
    started = time.perf_counter()
    response = await call()
    return time.perf_counter() - started, response.status_code


async def _probe_while(
    hostile: asyncio.Task[httpx.Response],
    probes: dict[str, Callable[[], Awaitable[httpx.Response]]],
) -> dict[str, list[tuple[float, int]]]:
    """Call each probe, one after another, until the hostile request is answered."""
    seen: dict[str, list[tuple[float, int]]] = {name: [] for name in probes}
    while not hostile.done():
        for name, probe in probes.items():
            seen[name].append(await _timed(probe))
        await asyncio.sleep(0.02)
    return seen


def _assert_prompt(seen: dict[str, list[tuple[float, int]]], ok: set[int]) -> None:
    for name, answers in seen.items():
        assert answers, f"{name} was never probed"
        assert {status for _, status in answers} <= ok, (name, answers)
        slowest = max(elapsed for elapsed, _ in answers)
        assert slowest < PROMPT_S, f"{name} took {slowest * 1000:.0f} ms while refusing"


async def test_the_worst_email_is_refused_while_health_and_posts_answer_at_once(
    ingest_factory: Any,
) -> None:
    hostile_body = empty_parts(10 * MB)
    async with ingest_factory(parse_cpu_limit_s=1.0, parse_timeout_s=4.0) as client:
        # The parse workers started with the app; an ordinary e-mail goes through one.
        warm = await asyncio.gather(
            *(
                client.post("/v1/feedback/email", content=ordinary_email(), headers=EMAIL)
                for _ in range(2)
            )
        )
        assert [r.status_code for r in warm] == [202, 202], [r.text for r in warm]
        started = time.perf_counter()
        hostile = asyncio.create_task(
            client.post("/v1/feedback/email", content=streamed(hostile_body), headers=EMAIL)
        )
        seen = await _probe_while(
            hostile,
            {
                "/healthz": lambda: client.get("/healthz"),
                "an ordinary e-mail": lambda: client.post(
                    "/v1/feedback/email", content=ordinary_email(), headers=EMAIL
                ),
            },
        )
        refused = await hostile
        elapsed = time.perf_counter() - started
        # Refused for its structure, or for the CPU its parsing took: either names the body.
        kind = str(refused.json().get("type", "")).rsplit("/", 1)[-1]
        assert kind in {"validation-error", "too-complex"}, refused.text[:300]
        assert assert_problem(refused, 422, kind)["errors"][0]["loc"] == ["body"]
        assert len(refused.content) < 2000
        assert elapsed < 10, f"refused after {elapsed:.1f} s"
        _assert_prompt(seen, {200, 202})
        # The workers survive the refusal (or are replaced): the next message goes through.
        after = await client.post("/v1/feedback/email", content=ordinary_email(), headers=EMAIL)
        assert after.status_code == 202, after.text


async def test_the_largest_batch_is_refused_while_health_and_posts_answer_at_once(
    ingest_factory: Any,
) -> None:
    hostile_body = empty_items(8 * MB)
    async with ingest_factory(parse_cpu_limit_s=5.0, parse_timeout_s=10.0) as client:
        # A parse worker starts with the first large body, the producer with the first event.
        warm = await client.post(
            "/v1/feedback/batch", content=streamed(empty_items(100_000)), headers=JSON
        )
        assert warm.status_code == 422
        first = await client.post("/v1/feedback", json=ordinary_event(), headers=DEV_AUTH)
        assert first.status_code == 202, first.text
        started = time.perf_counter()
        hostile = asyncio.create_task(
            client.post("/v1/feedback/batch", content=streamed(hostile_body), headers=JSON)
        )
        seen = await _probe_while(
            hostile,
            {
                "/healthz": lambda: client.get("/healthz"),
                "an ordinary event": lambda: client.post(
                    "/v1/feedback", content=json.dumps(ordinary_event()), headers=JSON
                ),
            },
        )
        refused = await hostile
        elapsed = time.perf_counter() - started
    assert assert_problem(refused, 422, "validation-error")["errors"] == [
        {"loc": ["body", "items"], "msg": "at most 100 items", "type": "too_long"}
    ]
    assert elapsed < 10, f"refused after {elapsed:.1f} s"
    _assert_prompt(seen, {200, 202})
