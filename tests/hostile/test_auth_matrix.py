"""The agent API's access rules on a live case: another agent can neither see nor act on a case
offered or assigned to someone else, an agent can call no supervisor action, and a case's
holder can."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.common.kafka import KafkaSettings
from services.common.problems import PROBLEM_JSON, TYPE_BASE
from services.common.topics import feedback_classified
from tests.hostile.conftest import SUPERVISOR_TOKEN
from tests.router import factories
from tests.support.process import ServiceProcess

pytestmark = pytest.mark.timeout(240)
ROUTER_DOC = Path(__file__).parents[2] / "docs" / "openapi" / "router.json"
# Every command on one case, with a body it accepts.
CASE_COMMANDS: dict[str, dict[str, Any] | None] = {
    "accept": None,
    "decline": {"reason": "not mine"},
    "respond": {"chars": 10},
    "wait": {"reason": "asked for the order number"},
    "resume": None,
    "resolve": {"note": "done"},
    "transfer": {"to_team": "billing"},
    "escalate": {"reason": "beyond me"},
    "csat": {"score": 5},
}
INTRUDER = "hiro"  # frontline agent of the trust team: never offered a delay case


def bearer(agent: str) -> dict[str, str]:
    return {"Authorization": f"Bearer dev-{agent}"}


def supervisor_operations() -> list[tuple[str, str]]:
    """(method, path) of every operation the document marks as a supervisor's."""
    document = json.loads(ROUTER_DOC.read_text())
    return [
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if operation.get("summary", "").startswith("Supervisor:")
    ]


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=20) as client:
        yield client


def _case_of(router: ServiceProcess, http: httpx.Client, customer: str) -> dict[str, Any]:
    for _ in range(150):
        cases = http.get(
            f"{router.base}/v1/cases", headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}
        ).json()["items"]
        mine = [c for c in cases if c["customer_id"] == customer and c["offer"]]
        if mine:
            return dict(mine[0])
        asyncio.run(asyncio.sleep(0.2))
    raise AssertionError(f"no case offered for {customer}")


async def _produce(kafka: KafkaSettings, customer: str) -> None:
    message = factories.feedback("My parcel is two weeks late.", customer=customer)
    producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            kafka.topic(feedback_classified),
            message.feedback.model_dump_json().encode(),
            key=customer.encode(),
        )
    finally:
        await producer.stop()


def _forbidden(response: httpx.Response, what: str, kind: str = "not-your-case") -> None:
    """A 403 as problem details of ``kind``, which says nothing about the case."""
    assert response.status_code == 403, (what, response.status_code, response.text)
    assert response.headers["content-type"] == PROBLEM_JSON, what
    body = response.json()
    assert body["type"] == TYPE_BASE + kind, (what, body)
    assert body["status"] == 403, what
    assert body["instance"] == response.request.url.path, what
    assert set(body) == {"type", "title", "status", "detail", "instance"}, what
    # The same words whatever the case's state: nothing about it is learnt.
    expected = (
        "this case is not yours" if kind == "not-your-case" else "only a supervisor may do this"
    )
    assert body["detail"] == expected, (what, body)


def test_an_agent_cannot_see_or_act_on_another_agents_case(
    router_service: ServiceProcess, module_kafka: KafkaSettings, http: httpx.Client
) -> None:
    base = router_service.base
    asyncio.run(_produce(module_kafka, "c-matrix"))
    case = _case_of(router_service, http, "c-matrix")
    holder = case["offer"]["agent_id"]
    assert holder != INTRUDER
    url = f"{base}/v1/cases/{case['case_id']}"

    for state in ("offered", "assigned"):
        _forbidden(http.get(url, headers=bearer(INTRUDER)), f"read an {state} case")
        listed = http.get(f"{base}/v1/cases", headers=bearer(INTRUDER)).json()["items"]
        assert case["case_id"] not in {c["case_id"] for c in listed}
        for command, body in CASE_COMMANDS.items():
            response = http.post(f"{url}/{command}", json=body, headers=bearer(INTRUDER))
            kind = "supervisor-only" if command == "csat" else "not-your-case"
            _forbidden(response, f"{command} on an {state} case", kind)
        if state == "offered":
            accepted = http.post(f"{url}/accept", headers=bearer(holder))
            assert accepted.status_code == 200, accepted.text
            assert accepted.json()["assignee"] == holder

    after = http.get(url, headers=bearer(holder))
    assert after.status_code == 200
    assert after.json()["assignee"] == holder, "nothing the intruder did changed the case"
    assert after.json()["state"] == "assigned"
    responded = http.post(f"{url}/respond", json={"chars": 42}, headers=bearer(holder))
    assert responded.status_code == 200, responded.text


@pytest.mark.parametrize(("method", "path"), supervisor_operations())
def test_an_agent_cannot_call_a_supervisor_action(
    router_service: ServiceProcess, http: httpx.Client, method: str, path: str
) -> None:
    url = router_service.base + path.replace("{agent_id}", "eva").replace(
        "{case_id}", "4cb7c88f-b960-4b29-a03a-ea093d0f3cbe"
    )
    for agent in ("dan", "grace"):  # frontline and senior
        response = http.request(method, url, headers=bearer(agent), json={})
        _forbidden(response, f"{agent}: {method} {path}", "supervisor-only")


def test_the_matrix_knows_every_supervisor_action() -> None:
    assert {path for _, path in supervisor_operations()} >= {
        "/v1/agents",
        "/v1/agents/{agent_id}",
        "/v1/agents/{agent_id}/presence",
        "/v1/cases/{case_id}/reassign",
        "/v1/cases/{case_id}/relabel",
        "/v1/queues",
    }
