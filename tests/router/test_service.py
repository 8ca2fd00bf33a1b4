"""The router worker and agent API on the real broker: classified messages in, cases routed to
the right agent, offers timing out, breaches escalating, agents leaving, poison dead-lettered,
the API's access rules, and a killed worker resuming without loss or double assignment."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.common.broker import EmbeddedBroker
from services.common.kafka import KafkaSettings, ensure_topics
from services.common.messages import Channel, Correction
from services.common.topics import (
    ALL_TOPICS,
    cases_events,
    feedback_classified,
    feedback_classified_dlq,
    feedback_corrections,
    router_inbox,
)
from services.router.roster import hash_token
from tests.router.factories import feedback
from tests.support.kafka import read_records
from tests.support.problems import assert_problem
from tests.support.process import ServiceProcess

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.timeout(240)

ROSTER: dict[str, Any] = {
    "default_team": "care",
    "teams": [
        {"id": "care", "name": "Care", "categories": ["delay", "product_fault", "billing"]},
        {"id": "trust", "name": "Trust", "categories": ["trust_privacy"]},
    ],
    "agents": [
        {
            "id": "amy",
            "name": "Amy",
            "team": "care",
            "skills": {"delay": 5, "billing": 4},
            "languages": ["en"],
            "channels": {"email": 3, "chat": 2},
            "authority": {"goodwill_credit": 50, "refund": 50},
            "hostile": True,
            "presence": "available",
        },
        {
            "id": "bob",
            "name": "Bob",
            "team": "care",
            "skills": {"delay": 2, "billing": 2},
            "languages": ["en"],
            "channels": {"email": 3, "chat": 1},
            "authority": {"goodwill_credit": 50, "refund": 50},
            "presence": "available",
        },
        {
            "id": "sue",
            "name": "Sue",
            "team": "care",
            "tier": "senior",
            "skills": {"delay": 3, "billing": 5},
            "languages": ["en"],
            "channels": {"email": 3},
            "authority": {"goodwill_credit": 500, "refund": 1000},
            "hostile": True,
            "presence": "available",
        },
        {
            "id": "boss",
            "name": "Boss",
            "team": "care",
            "tier": "supervisor",
            "skills": {"delay": 1},
            "languages": ["en"],
            "channels": {"email": 1},
            "authority": {"refund": 10000},
            "presence": "away",
        },
    ],
}
for _agent in ROSTER["agents"]:
    _agent["token_sha256"] = hash_token(f"token-{_agent['id']}")


def auth(agent_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer token-{agent_id}"}


SLA = """
warning_share: 0.5
on_warning: [notify]
on_breach: [notify, escalate]
calendars:
  always: {timezone: UTC, always_open: true}
targets:
  "*":
    "*": {first_response: 1h, resolution: 8h, follow_up: 1d}
  chat:
    "*": {first_response: 4s, resolution: 1h}
"""


class Router(ServiceProcess):
    """A `triage router` process on the test broker."""

    def __init__(
        self,
        kafka: KafkaSettings,
        tmp: Path,
        app_id: str,
        *,
        offer_timeout_s: float = 30,
        sla_text: str = SLA,
        env: dict[str, str] | None = None,
        roster_data: dict[str, Any] | None = None,
    ) -> None:
        roster = tmp / "roster.yaml"
        roster.write_text(json.dumps(roster_data or ROSTER))
        sla = tmp / "sla.yaml"
        sla.write_text(sla_text)
        environment = {
            **os.environ,
            "TRIAGE_KAFKA_BOOTSTRAP": kafka.bootstrap,
            "TRIAGE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
            "TRIAGE_ROUTER_APP_ID": app_id,
            "TRIAGE_ROUTER_DATA_DIR": str(tmp / "data"),
            "TRIAGE_ROUTER_ROSTER_FILE": str(roster),
            "TRIAGE_ROUTER_SLA_FILE": str(sla),
            "TRIAGE_ROUTER_OFFER_TIMEOUT_S": str(offer_timeout_s),
            "TRIAGE_ROUTER_TICK_INTERVAL_S": "0.2",
            **(env or {}),
        }
        super().__init__("router", environment, tmp)


async def produce(kafka: KafkaSettings, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(kafka.topic(feedback_classified), value, key=key)
    finally:
        await producer.stop()


def record_of(message: Any) -> tuple[bytes, bytes]:
    fc = message.feedback
    return fc.feedback.customer.id.encode(), fc.model_dump_json().encode()


async def every_page(http: httpx.AsyncClient, first: httpx.Response, agent: str) -> Any:
    """The body of ``first``; for a page of a list, the items of it and every later page."""
    body = first.json()
    if not (isinstance(body, dict) and set(body) == {"items", "next_cursor"}):
        return body
    items = list(body["items"])
    while body["next_cursor"] is not None:
        response = await http.get(
            first.request.url, params={"cursor": body["next_cursor"]}, headers=auth(agent)
        )
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["items"])
    return items


async def wait_for(
    http: httpx.AsyncClient,
    url: str,
    agent: str,
    check: Any,
    *,
    timeout_s: float = 30,
) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    body: Any = None
    while asyncio.get_running_loop().time() < deadline:
        response = await http.get(url, headers=auth(agent))
        if response.status_code == 200:
            body = await every_page(http, response, agent)
            if check(body):
                return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"condition not met on {url}; last body: {json.dumps(body)[:2000]}")


async def start_router(
    kafka: KafkaSettings, tmp_path: Path, routers: list[Router], **options: Any
) -> Router:
    await ensure_topics(kafka, ALL_TOPICS)
    router = Router(kafka, tmp_path, f"rt-{uuid.uuid4().hex[:8]}", **options)
    routers.append(router)
    router.start()
    router.wait_ready()
    return router


async def test_case_is_routed_worked_and_published(
    broker: EmbeddedBroker,
    kafka: KafkaSettings,
    tmp_path: Path,
    routers: list[Router],
    client: httpx.AsyncClient,
) -> None:
    router = await start_router(kafka, tmp_path, routers)
    base = router.base
    offers: list[dict[str, Any]] = []

    async def listen() -> None:
        async with client.stream("GET", f"{base}/v1/stream", headers=auth("amy")) as stream:
            event = None
            async for line in stream.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "offered":
                    offers.append(json.loads(line[6:]))
                    return

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0.5)
    message = feedback(
        "My order is two weeks late.", customer="c-1", category="delay", message_id="<m1@c>"
    )
    await produce(kafka, [record_of(message), (b"c-x", b"{not json")])
    await asyncio.wait_for(listener, 30)
    case = offers[0]["case"]
    case_id = case["case_id"]
    assert case["offer"]["agent_id"] == "amy", "best proficiency for delay"
    assert case["guidance"]
    assert case["deadlines"]
    assert case["routing"][-1]["agent_id"] == "amy"

    other = await client.get(f"{base}/v1/cases/{case_id}", headers=auth("bob"))
    assert_problem(other, 403, "not-your-case")
    assert (
        await client.post(f"{base}/v1/cases/{case_id}/accept", headers=auth("bob"))
    ).status_code == 403
    assert (await client.get(f"{base}/v1/cases")).status_code == 401
    assert (
        await client.get(f"{base}/v1/cases", headers={"Authorization": "Bearer nope"})
    ).status_code == 401
    assert (await client.get(f"{base}/v1/queues", headers=auth("amy"))).status_code == 403
    resolve_early = await client.post(f"{base}/v1/cases/{case_id}/resolve", headers=auth("amy"))
    assert_problem(resolve_early, 409, "state-conflict")

    accepted = await client.post(f"{base}/v1/cases/{case_id}/accept", headers=auth("amy"))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["state"] == "assigned"
    responded = await client.post(
        f"{base}/v1/cases/{case_id}/respond", headers=auth("amy"), json={"chars": 320}
    )
    assert responded.status_code == 200
    resolved = await client.post(
        f"{base}/v1/cases/{case_id}/resolve", headers=auth("amy"), json={"note": "refunded"}
    )
    assert resolved.status_code == 200
    assert resolved.json()["state"] == "resolved"
    csat = await client.post(
        f"{base}/v1/cases/{case_id}/csat", headers=auth("boss"), json={"score": 5}
    )
    assert csat.status_code == 200
    bad = await client.post(
        f"{base}/v1/cases/{case_id}/csat", headers=auth("boss"), json={"score": 9}
    )
    invalid = assert_problem(bad, 422, "validation-error")
    assert [e["loc"] for e in invalid["errors"]] == [["body", "score"]]

    mine = await client.get(f"{base}/v1/cases", headers=auth("amy"))
    assert [c["case_id"] for c in mine.json()["items"]] == [case_id]
    assert (await client.get(f"{base}/v1/cases", headers=auth("bob"))).json() == {
        "items": [],
        "next_cursor": None,
    }

    events = await read_records(kafka, kafka.topic(cases_events), expected=6, timeout_s=30)
    kinds = [r.json()["type"] for r in events]
    assert kinds == ["created", "offered", "assigned", "responded", "resolved", "csat_recorded"]
    assert all(r.key == case_id.encode() for r in events)
    versions = [r.json()["version"] for r in events]
    assert versions == sorted(versions)
    dead = await read_records(kafka, kafka.topic(feedback_classified_dlq), expected=1)
    assert dead[0].json()["reason"].startswith("invalid record")

    # A supervisor's correction of the tags becomes training data on feedback.corrections.
    relabel = f"{base}/v1/cases/{case_id}/relabel"
    assert (await client.post(relabel, headers=auth("amy"), json={})).status_code == 403
    corrected = await client.post(
        relabel, headers=auth("boss"), json={"category": "billing", "sentiment": "negative"}
    )
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["category"] == "billing"
    (record,) = await read_records(kafka, kafka.topic(feedback_corrections), expected=1)
    correction = Correction.model_validate_json(record.value)
    assert record.key == case_id.encode()
    assert correction.text == "My order is two weeks late."
    assert (correction.label_category, correction.label_sentiment) == ("billing", "negative")
    assert correction.label_difficult is None
    assert correction.predicted_category == "delay"
    assert correction.corrected_by == "boss"

    # A supervisor ties the cases of an emerging cluster's messages to an incident.
    event_id = case["messages"][0]["event_id"]
    stranger = str(uuid.uuid4())
    incident = {"reference": "INC-7", "note": "carrier depot closed", "event_ids": [event_id]}
    refused = await client.post(f"{base}/v1/incidents", headers=auth("amy"), json=incident)
    assert_problem(refused, 403, "supervisor-only")
    bad_ref = await client.post(
        f"{base}/v1/incidents", headers=auth("boss"), json={**incident, "reference": " x"}
    )
    assert [e["loc"] for e in assert_problem(bad_ref, 422, "validation-error")["errors"]] == [
        ["body", "reference"]
    ]
    tagged = await client.post(
        f"{base}/v1/incidents",
        headers=auth("boss"),
        json={**incident, "event_ids": [event_id, stranger]},
    )
    assert tagged.status_code == 200, tagged.text
    assert tagged.json() == {
        "reference": "INC-7",
        "tagged": [case_id],
        "unchanged": [],
        "missing": [stranger],
    }
    by_event = await client.get(
        f"{base}/v1/cases", params={"event_id": [event_id, stranger]}, headers=auth("amy")
    )
    (seen,) = by_event.json()["items"]
    assert (seen["case_id"], seen["incident"]["reference"]) == (case_id, "INC-7")
    nobody = await client.get(
        f"{base}/v1/cases", params={"event_id": event_id}, headers=auth("bob")
    )
    assert nobody.json()["items"] == []
    (tag_event,) = [
        r.json()
        for r in await read_records(kafka, kafka.topic(cases_events), expected=9, timeout_s=30)
        if r.json()["type"] == "incident_tagged"
    ]
    assert tag_event["detail"] == {"reference": "INC-7"}
    assert tag_event["case"]["incident"]["note"] == "carrier depot closed"

    floor = await client.get(f"{base}/v1/floor", headers=auth("boss"))
    assert floor.status_code == 200
    assert floor.json()["cases"]["resolved"] == 1
    assert (await client.get(f"{base}/v1/floor", headers=auth("amy"))).status_code == 403
    teams = (await client.get(f"{base}/v1/teams", headers=auth("amy"))).json()
    assert [t["id"] for t in teams] == ["care", "trust"]
    assert {a["id"] for a in teams[0]["agents"]} == {"amy", "bob", "sue", "boss"}

    metrics = (await client.get(f"{base}/metrics")).text
    assert 'triage_router_offers_total{outcome="accepted"} 1.0' in metrics
    assert 'triage_router_resolved_total{channel="email",first_contact="true"} 1.0' in metrics
    assert (
        'triage_router_sla_met_total{channel="email",metric="first_response",priority=' in metrics
    )
    assert 'triage_router_dead_letters_total{topic="feedback.classified"} 1.0' in metrics
    assert 'triage_router_corrections_total{tag="category"} 1.0' in metrics
    assert 'triage_router_queue_depth{priority="P1",team="care"} 0.0' in metrics
    assert "triage_router_time_to_assign_seconds_count" in metrics
    assert f'triage_consumer_lag_records{{partition="0",topic="{kafka.topic(router_inbox)}"}}' in (
        metrics
    )


async def test_timeout_breach_escalation_and_agent_leaving(
    broker: EmbeddedBroker,
    kafka: KafkaSettings,
    tmp_path: Path,
    routers: list[Router],
    client: httpx.AsyncClient,
) -> None:
    router = await start_router(kafka, tmp_path, routers, offer_timeout_s=2)
    base = router.base
    # A chat case: amy is offered it and lets the offer lapse; it goes to bob, who lets it
    # lapse too; it breaches its 4 s first response and escalates to the senior tier, where
    # nobody works chat, so it waits in the queue.
    chat = feedback(
        "Where is my refund?", customer="c-chat", channel=Channel.CHAT, category="delay"
    )
    await produce(kafka, [record_of(chat)])
    body = await wait_for(
        client,
        f"{base}/v1/cases?open=true",
        "boss",
        lambda cases: any(c["escalations"] >= 1 for c in cases),
    )
    case = body[0]
    assert case["required_tier"] == "senior"
    assert case["state"] == "queued", "no senior works chat: it waits in the queue"
    events = await read_records(kafka, kafka.topic(cases_events), expected=6, timeout_s=20)
    kinds = [r.json()["type"] for r in events]
    offers = [r.json()["agent_id"] for r in events if r.json()["type"] == "offered"]
    assert offers[:2] == ["amy", "bob"], "after amy's offer lapsed, the next agent got it"
    assert kinds.index("offer_timed_out") < kinds.index("sla_breached")
    assert kinds.count("sla_breached") == 1

    # An e-mail case offered to amy returns to the queue when she goes away, and goes to bob.
    email = feedback("Parcel late again", customer="c-mail", category="delay")
    await produce(kafka, [record_of(email)])
    offered = await wait_for(
        client,
        f"{base}/v1/cases?open=true",
        "amy",
        lambda cases: any(c["offer"] and c["channel"] == "email" for c in cases),
    )
    case_id = next(c["case_id"] for c in offered if c["channel"] == "email")
    away = await client.put(
        f"{base}/v1/me/presence", headers=auth("amy"), json={"presence": "away"}
    )
    assert away.status_code == 200
    moved = await wait_for(
        client,
        f"{base}/v1/cases/{case_id}",
        "boss",
        lambda c: c["offer"] is not None and c["offer"]["agent_id"] != "amy",
    )
    assert moved["offer"]["agent_id"] in {"bob", "sue"}
    queues = await client.get(f"{base}/v1/queues", headers=auth("boss"))
    assert queues.status_code == 200
    agents = await client.get(f"{base}/v1/agents", headers=auth("boss"))
    assert {a["profile"]["id"]: a["presence"] for a in agents.json()["items"]}["amy"] == "away"


@pytest.mark.timeout(300)
async def test_killed_worker_resumes_without_loss_or_double_assignment(
    broker: EmbeddedBroker,
    kafka: KafkaSettings,
    tmp_path: Path,
    routers: list[Router],
    client: httpx.AsyncClient,
) -> None:
    app_id = f"rt-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, ALL_TOPICS)
    first = Router(kafka, tmp_path, app_id)
    routers.append(first)
    first.start()
    first.wait_ready()
    before = [feedback(f"Late parcel {n}", customer=f"k-{n}", category="delay") for n in range(6)]
    # A chat case whose 4 s first-response deadline falls while the worker is down.
    chat = feedback("Still waiting", customer="k-chat", channel=Channel.CHAT, category="delay")
    before.append(chat)
    await produce(kafka, [record_of(m) for m in before])
    cases = await wait_for(
        client, f"{first.base}/v1/cases", "boss", lambda cs: len(cs) == 7, timeout_s=30
    )
    offered_to_amy = [
        c["case_id"]
        for c in cases
        if c["offer"] and c["offer"]["agent_id"] == "amy" and c["channel"] == "email"
    ]
    assert offered_to_amy
    accepted = await client.post(
        f"{first.base}/v1/cases/{offered_to_amy[0]}/accept", headers=auth("amy")
    )
    assert accepted.status_code == 200
    await asyncio.sleep(1.5)  # past a commit interval, before the chat case's warning (2 s)
    first.kill()

    after = [feedback(f"Late parcel {n}", customer=f"k-{n}", category="delay") for n in range(6, 9)]
    await produce(kafka, [record_of(m) for m in after])
    second = Router(kafka, tmp_path, app_id)
    routers.append(second)
    second.start()
    second.wait_ready()
    cases = await wait_for(
        client, f"{second.base}/v1/cases", "boss", lambda cs: len(cs) == 10, timeout_s=60
    )
    by_id = {c["case_id"]: c for c in cases}
    assert by_id[offered_to_amy[0]]["assignee"] == "amy", json.dumps(by_id[offered_to_amy[0]])[
        :3000
    ]
    agents = (await client.get(f"{second.base}/v1/agents", headers=auth("boss"))).json()["items"]
    held = [case_id for a in agents for case_id in a["cases"]]
    assert len(held) == len(set(held)), "a case is held by two agents"
    for agent in agents:
        capacity = agent["profile"]["channels"]
        for channel, used in agent["load"].items():
            assert used <= capacity[channel]
    events = await read_records(
        kafka, kafka.topic(cases_events), expected=1, timeout_s=20, settle_s=2
    )
    created = [r.json()["case_id"] for r in events if r.json()["type"] == "created"]
    assert sorted(set(created)) == sorted(by_id)
    assigned: dict[str, set[str]] = {}
    for r in events:
        body = r.json()
        if body["type"] == "assigned":
            assigned.setdefault(body["case_id"], set()).add(body["event_id"])
    assert all(len(ids) == 1 for ids in assigned.values()), "an assignment was published twice"
    chat_case = next(c for c in cases if c["channel"] == "chat")
    await wait_for(
        client,
        f"{second.base}/v1/cases/{chat_case['case_id']}",
        "boss",
        lambda c: any(d["metric"] == "first_response" and d["breached"] for d in c["deadlines"]),
    )
    await asyncio.sleep(1)
    events = await read_records(
        kafka, kafka.topic(cases_events), expected=1, timeout_s=20, settle_s=2
    )
    fired: dict[str, set[str]] = {}
    for r in events:
        body = r.json()
        if body["case_id"] == chat_case["case_id"] and body["type"].startswith("sla_"):
            fired.setdefault(body["type"], set()).add(body["event_id"])
    assert {kind: len(ids) for kind, ids in fired.items()} == {
        "sla_warning": 1,
        "sla_breached": 1,
    }, "a deadline was lost or fired twice across the restart"
    second.stop()


SUPERVISOR_ONLY = {
    ("GET", "/v1/queues"),
    ("GET", "/v1/agents"),
    ("PUT", "/v1/agents/{agent_id}"),
    ("DELETE", "/v1/agents/{agent_id}"),
    ("PUT", "/v1/agents/{agent_id}/presence"),
    ("POST", "/v1/cases/{case_id}/reassign"),
    ("POST", "/v1/cases/{case_id}/relabel"),
    ("POST", "/v1/cases/{case_id}/csat"),
    ("POST", "/v1/incidents"),
    ("GET", "/v1/review"),
}


async def test_every_endpoint_refuses_missing_wrong_and_insufficient_credentials(
    broker: EmbeddedBroker,
    kafka: KafkaSettings,
    tmp_path: Path,
    routers: list[Router],
    client: httpx.AsyncClient,
) -> None:
    router = await start_router(kafka, tmp_path, routers)
    document = (await client.get(f"{router.base}/openapi.json")).json()
    routes = [
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    ]
    assert len(routes) >= 20
    case_id = str(uuid.uuid4())
    for method, path in routes:
        url = router.base + path.replace("{case_id}", case_id).replace("{agent_id}", "bob")
        if method == "GET" and path == "/v1/stream":
            continue  # a stream: checked below without reading it
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic eDp5"}):
            response = await client.request(method, url, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers, response.text)
            assert "errors" not in assert_problem(response, 401, None)
            assert response.headers["www-authenticate"] == "Bearer"
        if (method, path) in SUPERVISOR_ONLY:
            response = await client.request(method, url, headers=auth("amy"), json={})
            assert response.status_code == 403, (method, path, response.text)
            assert_problem(response, 403, "supervisor-only")
    stream = await client.get(f"{router.base}/v1/stream", headers={"Authorization": "Bearer x"})
    assert stream.status_code == 401


@pytest.mark.timeout(300)
async def test_a_second_worker_stands_by_and_takes_over_without_loss(
    broker: EmbeddedBroker,
    kafka: KafkaSettings,
    tmp_path: Path,
    routers: list[Router],
    client: httpx.AsyncClient,
) -> None:
    app_id = f"rt-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, ALL_TOPICS)
    first = Router(kafka, tmp_path, app_id)
    routers.append(first)
    first.start()
    first.wait_ready()
    second = Router(kafka, tmp_path, app_id)
    routers.append(second)
    second.start()
    await asyncio.sleep(10)  # the second worker joins; the one inbox partition stays with one
    states = {
        router.port: (await client.get(f"{router.base}/readyz")).status_code
        for router in (first, second)
    }
    assert sorted(states.values()) == [200, 503], "one active worker, one standby"
    active, standby = (first, second) if states[first.port] == 200 else (second, first)
    standby_call = await client.get(f"{standby.base}/v1/cases", headers=auth("boss"))
    assert_problem(standby_call, 503, "not-ready")
    assert standby_call.headers["retry-after"]

    await produce(kafka, [record_of(feedback(f"Late {n}", customer=f"s-{n}")) for n in range(5)])
    await wait_for(client, f"{active.base}/v1/cases", "boss", lambda cs: len(cs) == 5)
    active.kill()
    standby.wait_ready(timeout_s=60)
    await produce(kafka, [record_of(feedback(f"Late {n}", customer=f"s-{n}")) for n in range(5, 8)])
    cases = await wait_for(client, f"{standby.base}/v1/cases", "boss", lambda cs: len(cs) == 8)
    assert len({c["case_id"] for c in cases}) == 8
