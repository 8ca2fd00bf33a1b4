"""schemathesis against the running ingest and router processes, from their committed OpenAPI
documents: no 5xx, every status code, content type and body as documented, and every documented
example accepted. A short run in the default suite; ``-m slow`` runs many more examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import Case
from schemathesis.config import SchemathesisConfig
from schemathesis.schemas import BaseSchema

from services.ingest.api import UNAUTHORIZED as INGEST_UNAUTHORIZED
from services.ingest.settings import DEV_API_KEY
from services.router.api import UNAUTHORIZED as ROUTER_UNAUTHORIZED
from tests.hostile.conftest import SUPERVISOR_TOKEN
from tests.support.process import ServiceProcess

ROOT = Path(__file__).parents[2]
INGEST_DOC = ROOT / "docs" / "openapi" / "ingest.json"
ROUTER_DOC = ROOT / "docs" / "openapi" / "router.json"
SHORT_EXAMPLES = 25
SHORT_COMMAND_EXAMPLES = 5
ANONYMOUS_EXAMPLES = 10
LONG_EXAMPLES = 500
LONG_COMMAND_EXAMPLES = 100
UNAUTHORIZED = {INGEST_UNAUTHORIZED, ROUTER_UNAUTHORIZED}
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)

pytestmark = pytest.mark.timeout(600)


def config(max_examples: int, command_examples: int, command_coverage: bool) -> SchemathesisConfig:
    """Every phase but the stateful one, positive and negative inputs, the four checks.

    Operations that change something (every one but GET) get ``command_examples`` and run the
    coverage phase only when ``command_coverage``: on the agent API each such call that passes
    validation waits for its command's round trip through the router's inbox topic (about 60 ms
    on the embedded broker).
    """
    checks: dict[str, Any] = {"enabled": False, **{name: {"enabled": True} for name in CHECKS}}
    return SchemathesisConfig.from_dict(
        {
            "operations": [
                {
                    "exclude-method": "GET",
                    "generation": {"mode": "all", "max-examples": command_examples},
                    "phases": {"coverage": {"enabled": command_coverage}},
                }
            ],
            "request-timeout": 20,
            "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
            "generation": {"mode": "all", "max-examples": max_examples},
            "checks": checks,
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
        }
    )


@schemathesis.serializer("message/rfc822")
def _raw_email(context: Any, value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")


def _schema(
    document: Path, examples: int, command_examples: int, *, command_coverage: bool = True
) -> BaseSchema:
    settings = config(examples, command_examples, command_coverage)
    return schemathesis.openapi.from_path(document, config=settings).exclude(path="/v1/stream")


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ingest_short = _schema(INGEST_DOC, SHORT_EXAMPLES, SHORT_EXAMPLES)
ingest_long = _schema(INGEST_DOC, LONG_EXAMPLES, LONG_EXAMPLES)
router_short = _schema(ROUTER_DOC, SHORT_EXAMPLES, SHORT_COMMAND_EXAMPLES, command_coverage=False)
router_long = _schema(ROUTER_DOC, LONG_EXAMPLES, LONG_COMMAND_EXAMPLES)
# Without credentials nothing reaches a command, so every operation is cheap.
ingest_anonymous = _schema(INGEST_DOC, ANONYMOUS_EXAMPLES, ANONYMOUS_EXAMPLES).exclude(
    path=["/healthz", "/readyz", "/metrics"]
)
router_anonymous = _schema(ROUTER_DOC, ANONYMOUS_EXAMPLES, ANONYMOUS_EXAMPLES)


def only_unauthorized(ctx: Any, response: schemathesis.Response, case: Case[Any]) -> bool | None:
    """Without credentials, every /v1 operation answers a bare 401, whatever else is wrong (a
    method the path does not have is answered 405 before anyone is asked who they are)."""
    if not case.path.startswith("/v1/"):
        return None
    if (response.request.method or "").upper() != case.operation.method.upper():
        return None
    if response.status_code != 401:
        raise AssertionError(f"{response.status_code} without credentials: {response.text[:200]}")
    problem = response.json()
    expected = {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": problem.get("detail"),
        "instance": problem.get("instance"),
    }
    if (
        problem != expected
        or problem["detail"] not in UNAUTHORIZED
        or not str(problem["instance"]).startswith("/v1/")
        or response.headers.get("content-type") != ["application/problem+json"]
    ):
        raise AssertionError(f"a 401 that says more than 'unauthorized': {response.text[:200]}")
    return None


@ingest_short.parametrize()
def test_ingest_api_conforms(case: Case[Any], ingest_service: ServiceProcess) -> None:
    case.call_and_validate(base_url=ingest_service.base, headers=_auth(DEV_API_KEY))


@router_short.parametrize()
def test_agent_api_conforms(case: Case[Any], router_service: ServiceProcess) -> None:
    case.call_and_validate(base_url=router_service.base, headers=_auth(SUPERVISOR_TOKEN))


@ingest_anonymous.parametrize()
def test_ingest_api_without_credentials_answers_401(
    case: Case[Any], ingest_service: ServiceProcess
) -> None:
    case.headers.pop("Authorization", None)
    case.call_and_validate(base_url=ingest_service.base, additional_checks=[only_unauthorized])


@router_anonymous.parametrize()
def test_agent_api_without_credentials_answers_401(
    case: Case[Any], router_service: ServiceProcess
) -> None:
    case.headers.pop("Authorization", None)
    case.call_and_validate(base_url=router_service.base, additional_checks=[only_unauthorized])


@pytest.mark.slow
@ingest_long.parametrize()
def test_ingest_api_conforms_long(case: Case[Any], ingest_service: ServiceProcess) -> None:
    case.call_and_validate(base_url=ingest_service.base, headers=_auth(DEV_API_KEY))


@pytest.mark.slow
@router_long.parametrize()
def test_agent_api_conforms_long(case: Case[Any], router_service: ServiceProcess) -> None:
    case.call_and_validate(base_url=router_service.base, headers=_auth(SUPERVISOR_TOKEN))


def _request_examples(document: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """Every documented request-body example: (path, media type, example)."""
    schemas = document["components"]["schemas"]
    found = []
    for path, operations in document["paths"].items():
        for operation in operations.values():
            for media, content in operation.get("requestBody", {}).get("content", {}).items():
                examples = [content["example"]] if "example" in content else []
                examples += [e["value"] for e in content.get("examples", {}).values()]
                ref = content.get("schema", {}).get("$ref", "")
                if ref:
                    examples += schemas[ref.rsplit("/", 1)[-1]].get("examples", [])
                found += [(path, media, example) for example in examples]
    return found


INGEST_EXAMPLES = _request_examples(json.loads(INGEST_DOC.read_text()))


@pytest.mark.parametrize(
    ("path", "media", "example"),
    INGEST_EXAMPLES,
    ids=[f"{path} {media}" for path, media, _ in INGEST_EXAMPLES],
)
def test_documented_ingest_examples_are_accepted(
    ingest_service: ServiceProcess, path: str, media: str, example: Any
) -> None:
    body = example.encode() if isinstance(example, str) else json.dumps(example).encode()
    response = httpx.post(
        ingest_service.base + path,
        content=body,
        headers={**_auth(DEV_API_KEY), "Content-Type": media},
        timeout=15,
    )
    assert response.status_code in (200, 202), response.text


def test_every_ingest_operation_with_a_body_has_an_example() -> None:
    documented = {path for path, _, _ in INGEST_EXAMPLES}
    assert documented == {
        "/v1/feedback",
        "/v1/feedback/email",
        "/v1/feedback/chat",
        "/v1/feedback/social",
        "/v1/feedback/batch",
    }
