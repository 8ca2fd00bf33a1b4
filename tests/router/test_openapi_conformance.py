"""schemathesis against the agent API in process, on a real routing engine (commands applied
directly, no broker): every answer, refusals and pages included, has the status code, the
content type (application/problem+json for errors) and the body its OpenAPI document states.
The broker-backed run against the `triage router` process is tests/hostile/test_openapi_fuzz."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from schemathesis import Case
from schemathesis.config import SchemathesisConfig

from services.router.api import create_api
from services.router.roster import hash_token
from tests.router.factories import T0, agent, engine, feedback
from tests.router.test_hardening_api import FakeRuntime

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)


def _app() -> Any:
    router = engine(
        agent("boss", tier="supervisor", presence="away", token_sha256=hash_token("t-boss")),
        agent("amy", token_sha256=hash_token("t-amy")),
        agent("bob", token_sha256=hash_token("t-bob")),
    )
    for n in range(5):
        at = T0 + timedelta(seconds=n)
        router.apply(feedback(at=at), at)
    return create_api(FakeRuntime(router))


def _config() -> SchemathesisConfig:
    checks: dict[str, Any] = {"enabled": False, **{name: {"enabled": True} for name in CHECKS}}
    return SchemathesisConfig.from_dict(
        {
            "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
            "generation": {"mode": "all", "max-examples": 15},
            "checks": checks,
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
        }
    )


schema = schemathesis.openapi.from_asgi("/openapi.json", _app(), config=_config()).exclude(
    path="/v1/stream"
)

pytestmark = pytest.mark.timeout(600)


@schema.parametrize()
def test_agent_api_answers_as_documented(case: Case[Any]) -> None:
    case.call_and_validate(headers={"Authorization": "Bearer t-boss"})
