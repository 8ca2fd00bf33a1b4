"""Bad input gets a clear 4xx naming the field, and nothing is produced."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.common.kafka import KafkaSettings
from tests.ingest.conftest import DEV_AUTH
from tests.support.kafka import read_records
from tests.support.problems import assert_problem

VALID = {"id": "e-1", "channel": "email", "customer": {"id": "c-1"}, "text": "It broke."}
JSON = {**DEV_AUTH, "Content-Type": "application/json"}


def _with(**changes: Any) -> dict[str, Any]:
    body = {**VALID, **changes}
    return {k: v for k, v in body.items() if v is not None}


CASES: list[tuple[str, str, bytes, dict[str, str], int, list[Any] | None]] = [
    ("malformed JSON", "/v1/feedback", b'{"id": "x",', JSON, 422, ["body"]),
    ("not an object", "/v1/feedback", b"[1, 2]", JSON, 422, ["body"]),
    ("empty body", "/v1/feedback", b"", JSON, 422, ["body"]),
    ("invalid UTF-8", "/v1/feedback", b'{"id": "\xff\xfe"}', JSON, 422, ["body"]),
    (
        "unknown channel",
        "/v1/feedback",
        httpx.Request("POST", "/", json=_with(channel="fax")).content,
        JSON,
        422,
        ["body", "channel"],
    ),
    (
        "missing text",
        "/v1/feedback",
        httpx.Request("POST", "/", json=_with(text=None)).content,
        JSON,
        422,
        ["body", "text"],
    ),
    (
        "blank text",
        "/v1/feedback",
        httpx.Request("POST", "/", json=_with(text=" \n\t ")).content,
        JSON,
        422,
        ["body", "text"],
    ),
    (
        "text over the limit",
        "/v1/feedback",
        httpx.Request("POST", "/", json=_with(text="x" * 20_001)).content,
        JSON,
        422,
        ["body", "text"],
    ),
    (
        "missing customer",
        "/v1/feedback",
        httpx.Request("POST", "/", json=_with(customer=None)).content,
        JSON,
        422,
        ["body", "customer"],
    ),
    (
        "unknown field",
        "/v1/feedback",
        httpx.Request("POST", "/", json=_with(colour="red")).content,
        JSON,
        422,
        ["body", "colour"],
    ),
    (
        "time without zone",
        "/v1/feedback",
        httpx.Request("POST", "/", json=_with(occurred_at="2026-01-01T10:00:00")).content,
        JSON,
        422,
        ["body", "occurred_at"],
    ),
    (
        "wrong type",
        "/v1/feedback",
        httpx.Request("POST", "/", json=_with(customer={"id": 5})).content,
        JSON,
        422,
        ["body", "customer", "id"],
    ),
    (
        "deeply nested",
        "/v1/feedback",
        b'{"attributes": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        JSON,
        422,
        None,
    ),
    ("huge number", "/v1/feedback", b'{"id": 1' + b"0" * 5000 + b"}", JSON, 422, None),
    (
        "wrong content type",
        "/v1/feedback",
        httpx.Request("POST", "/", json=VALID).content,
        {**DEV_AUTH, "Content-Type": "text/plain"},
        415,
        None,
    ),
    (
        "body over the byte limit",
        "/v1/feedback",
        b'{"text": "' + b"x" * 1_100_000 + b'"}',
        JSON,
        413,
        None,
    ),
    (
        "undecodable MIME",
        "/v1/feedback/email",
        b"\x00\x01\x02 not a mail \xff",
        {**DEV_AUTH, "Content-Type": "message/rfc822"},
        422,
        ["body"],
    ),
    (
        "mail without From",
        "/v1/feedback/email",
        b"Subject: hi\r\n\r\nhello\r\n",
        {**DEV_AUTH, "Content-Type": "message/rfc822"},
        422,
        ["body"],
    ),
    (
        "mail as JSON",
        "/v1/feedback/email",
        httpx.Request("POST", "/", json=VALID).content,
        JSON,
        415,
        None,
    ),
    (
        "chat without customer turn",
        "/v1/feedback/chat",
        httpx.Request(
            "POST",
            "/",
            json={"id": "c", "customer": {"id": "c"}, "turns": [{"role": "agent", "text": "hi"}]},
        ).content,
        JSON,
        422,
        ["body", "turns"],
    ),
    (
        "chat with unknown role",
        "/v1/feedback/chat",
        httpx.Request(
            "POST",
            "/",
            json={"id": "c", "customer": {"id": "c"}, "turns": [{"role": "ghost", "text": "x"}]},
        ).content,
        JSON,
        422,
        ["body", "turns", 0, "role"],
    ),
    (
        "social with negative followers",
        "/v1/feedback/social",
        httpx.Request(
            "POST",
            "/",
            json={
                "id": "s",
                "network": "x",
                "author": {"handle": "@a", "followers": -1},
                "text": "x",
            },
        ).content,
        JSON,
        422,
        ["body", "author", "followers"],
    ),
    (
        "cloudevent of the wrong version",
        "/v1/feedback",
        httpx.Request(
            "POST",
            "/",
            json={"specversion": "0.3", "id": "1", "source": "s", "type": "t", "data": {}},
        ).content,
        {**DEV_AUTH, "Content-Type": "application/cloudevents+json"},
        422,
        ["body", "specversion"],
    ),
    ("batch that is empty", "/v1/feedback/batch", b'{"items": []}', JSON, 422, ["body", "items"]),
]


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "loc"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_bad_input_is_refused_and_nothing_produced(
    ingest: httpx.AsyncClient,
    kafka: KafkaSettings,
    topic: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    loc: list[Any] | None,
) -> None:
    response = await ingest.post(path, content=body, headers=headers)
    assert response.status_code == status, response.text
    problem = assert_problem(response, status, "validation-error" if status == 422 else None)
    if loc is not None:
        errors = problem["errors"]
        assert errors[0]["loc"] == loc
        assert errors[0]["msg"]
        assert set(errors[0]) == {"loc", "msg", "type"}, "never the input sent"
    assert await read_records(kafka, topic, expected=0, settle_s=0.3) == []


async def test_text_limit_is_configurable(ingest_factory: Any) -> None:
    async with ingest_factory(max_text_chars=100) as client:
        response = await client.post("/v1/feedback", json=_with(text="x" * 101), headers=DEV_AUTH)
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["msg"] == "text is longer than 100 characters"


async def test_chunked_body_over_the_limit(ingest: httpx.AsyncClient) -> None:
    async def chunks() -> Any:
        for _ in range(20):
            yield b"x" * 100_000

    response = await ingest.post("/v1/feedback", content=chunks(), headers=JSON)
    assert response.status_code == 413
