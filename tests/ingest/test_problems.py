"""Every refusal of the ingest API is RFC 9457 problem details (application/problem+json), and
its OpenAPI document says so. The kinds the other tests reach (401, 408, 413, 415, 422, 429,
503) are checked there with the same helper; these are the rest."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.common.kafka import KafkaSettings
from services.common.problems import PROBLEM_JSON
from services.ingest import normalise
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from tests.ingest.conftest import DEV_AUTH
from tests.support.problems import assert_problem

EVENT = {"id": "p-1", "channel": "web", "customer": {"id": "c-1"}, "text": "It broke."}


async def test_unknown_paths_and_methods_are_problems(ingest: httpx.AsyncClient) -> None:
    for headers in ({}, DEV_AUTH):
        missing = await ingest.get("/v1/nothing", headers=headers)
        assert_problem(missing, 404, None)
        assert missing.json()["title"] == "Not Found"
    wrong = await ingest.get("/v1/feedback", headers=DEV_AUTH)
    assert_problem(wrong, 405, None)
    assert wrong.headers["allow"] == "POST"


async def test_validation_errors_name_every_offending_field(ingest: httpx.AsyncClient) -> None:
    body = {**EVENT, "channel": "fax", "customer": {"id": ""}, "colour": "red"}
    response = await ingest.post("/v1/feedback", json=body, headers=DEV_AUTH)
    problem = assert_problem(response, 422, "validation-error")
    assert {tuple(error["loc"]) for error in problem["errors"]} == {
        ("body", "channel"),
        ("body", "customer", "id"),
        ("body", "colour"),
    }
    for error in problem["errors"]:
        assert set(error) == {"loc", "msg", "type"}
        assert error["msg"]
        assert error["type"]
    assert problem["detail"].startswith("3 fields are not valid: ")
    assert "body.channel" in problem["detail"]
    assert "fax" not in response.text, "the values sent are never echoed"


async def test_a_query_parameter_error_is_a_validation_problem(ingest: httpx.AsyncClient) -> None:
    # The e-mail endpoint reads the customer from its query; a bad value is named like a field.
    response = await ingest.post(
        "/v1/feedback/email?customer_tier=galactic",
        content=b"From: a@example.com\r\n\r\nhello",
        headers={**DEV_AUTH, "Content-Type": "message/rfc822"},
    )
    problem = assert_problem(response, 422, "validation-error")
    assert [error["loc"] for error in problem["errors"]] == [["query", "customer_tier"]]


async def test_a_bug_is_a_problem_that_hides_its_insides(
    kafka: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret insides")

    monkeypatch.setattr(normalise, "from_feedback", broken)
    app = create_app(IngestSettings(), kafka)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        response = await client.post("/v1/feedback", json=EVENT, headers=DEV_AUTH)
    assert_problem(response, 500, "internal-error")
    assert "secret" not in response.text


def test_openapi_documents_problem_details_for_every_error(kafka: KafkaSettings) -> None:
    document = create_app(IngestSettings(), kafka).openapi()
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"title", "status", "detail", "instance"}
    assert "errors" in problem["properties"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    seen = 0
    for path, operations in document["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if code[0] in "45":
                    seen += 1
                    assert response["content"] == {
                        PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
                    }, (path, method, code)
    assert seen >= 30
    feedback = document["paths"]["/v1/feedback"]["post"]["responses"]
    assert "Retry-After" in feedback["429"]["headers"]
    assert "Retry-After" in feedback["503"]["headers"]
    assert "WWW-Authenticate" in feedback["401"]["headers"]


async def test_a_body_over_its_parse_deadline_is_a_too_complex_problem(
    ingest_factory: Any,
) -> None:
    # The e-mail parser is Python, which the parse worker's CPU timer stops at once: a
    # 200,000-line message takes far more than the millisecond allowed, on any machine. The
    # wall-clock limit is generous, so that a loaded machine still ends on the CPU limit.
    lines = "".join(f"line {n} of a very long complaint\r\n" for n in range(200_000))
    raw = (
        "From: a@example.com\r\nSubject: long\r\nMessage-ID: <long@example.com>\r\n\r\n" + lines
    ).encode()
    async with ingest_factory(
        parse_cpu_limit_s=0.001, parse_timeout_s=30, max_email_bytes=16 * 1_048_576
    ) as client:
        response = await client.post(
            "/v1/feedback/email",
            content=raw,
            headers={**DEV_AUTH, "Content-Type": "message/rfc822"},
        )
    problem = assert_problem(response, 422, "too-complex")
    assert problem["errors"] == [
        {"loc": ["body"], "msg": problem["errors"][0]["msg"], "type": "too_complex"}
    ]
    assert "too complex" in problem["detail"]
