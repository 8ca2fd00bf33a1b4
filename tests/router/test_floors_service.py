"""Floors on the broker: two active `triage router` workers share a roster's two floors (an
inbox partition each), answer every agent whichever worker the request reaches, pass a case
transferred between floors as an inbox record, and one takes over both floors when the other
is killed."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.broker import EmbeddedBroker
from services.common.kafka import KafkaSettings, ensure_topics
from services.common.topics import ALL_TOPICS, router_inbox
from services.router.roster import hash_token
from tests.router.factories import feedback
from tests.router.test_service import Router, auth, produce, record_of, wait_for

pytestmark = pytest.mark.timeout(300)


def member(agent_id: str, team: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": agent_id,
        "name": agent_id.title(),
        "team": team,
        "skills": {"delay": 3, "billing": 3},
        "languages": ["en"],
        "channels": {"email": 5},
        "authority": {"refund": 100, "goodwill_credit": 50},
        "hostile": True,
        "presence": "available",
        "token_sha256": hash_token(f"token-{agent_id}"),
        **extra,
    }


ROSTER: dict[str, Any] = {
    "floors": ["front", "back"],
    "default_team": "care",
    "teams": [
        {"id": "care", "name": "Care", "categories": ["delay"], "floor": "front"},
        {"id": "billing", "name": "Billing", "categories": ["billing"], "floor": "back"},
    ],
    "agents": [
        member("amy", "care"),
        member("boss", "care", tier="supervisor", presence="away"),
        member("bill", "billing"),
        member("bea", "billing", tier="supervisor", presence="away"),
    ],
}


def routed_teams(metrics: str) -> set[str]:
    """The teams whose agents a worker reports: those of the floors it routes."""
    teams = set()
    for line in metrics.splitlines():
        if line.startswith("triage_router_agents{"):
            teams.add(line.split('team="')[1].split('"')[0])
    return teams


async def ready(http: httpx.AsyncClient, router: Router) -> bool:
    try:
        return (await http.get(f"{router.base}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def first_snapshot(http: httpx.AsyncClient, base: str, agent: str) -> dict[str, Any]:
    """The snapshot a live stream opens with."""
    async with http.stream("GET", f"{base}/v1/stream", headers=auth(agent)) as stream:
        assert stream.status_code == 200
        event = None
        async for line in stream.aiter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "snapshot":
                snapshot: dict[str, Any] = json.loads(line.split(":", 1)[1])
                return snapshot
    raise AssertionError("the stream ended without a snapshot")


async def test_two_active_routers_share_two_floors_and_one_takes_over_both(
    broker: EmbeddedBroker,
    kafka: KafkaSettings,
    tmp_path: Path,
    routers: list[Router],
    client: httpx.AsyncClient,
) -> None:
    topics = [spec for spec in ALL_TOPICS if spec.name != router_inbox.name]
    await ensure_topics(kafka, [*topics, dataclasses.replace(router_inbox, partitions=2)])
    app_id = f"rf-{uuid.uuid4().hex[:8]}"
    first = Router(kafka, tmp_path, app_id, roster_data=ROSTER)
    second = Router(kafka, tmp_path, app_id, roster_data=ROSTER)
    for router in (first, second):
        routers.append(router)
        router.start()
    deadline = asyncio.get_running_loop().time() + 90
    while not (await ready(client, first) and await ready(client, second)):
        assert asyncio.get_running_loop().time() < deadline, "both workers route a floor"
        await asyncio.sleep(0.5)
    teams = {r.port: routed_teams((await client.get(f"{r.base}/metrics")).text) for r in routers}
    assert sorted(map(sorted, teams.values())) == [["billing"], ["care"]], teams
    front, back = (first, second) if teams[first.port] == {"care"} else (second, first)

    delays = [feedback(f"Late parcel {n}", category="delay", customer=f"f-{n}") for n in range(3)]
    bills = [
        feedback(f"Charged twice {n}", category="billing", customer=f"b-{n}") for n in range(6)
    ]
    await produce(kafka, [record_of(m) for m in delays + bills])
    # Either worker answers every agent: its own floor, or the other's forwarded there.
    for router in (front, back):
        front_cases = await wait_for(
            client, f"{router.base}/v1/cases", "boss", lambda c: len(c) == 3
        )
        assert {c["team"] for c in front_cases} == {"care"}
        back_cases = await wait_for(client, f"{router.base}/v1/cases", "bea", lambda c: len(c) == 6)
        assert {c["team"] for c in back_cases} == {"billing"}
    # A live stream through the worker that does not route the agent's floor.
    snapshot = await first_snapshot(client, front.base, "bill")
    assert snapshot["agent"] == "bill"
    assert {c["team"] for c in snapshot["cases"]} == {"billing"}

    # Amy works a case through the back floor's worker, then transfers it to billing: the case
    # leaves the front floor and is routed on the back floor.
    offered = [c for c in front_cases if (c.get("offer") or {}).get("agent_id") == "amy"]
    assert offered, json.dumps(front_cases)[:3000]
    case = offered[0]
    accepted = await client.post(
        f"{back.base}/v1/cases/{case['case_id']}/accept", headers=auth("amy")
    )
    assert accepted.status_code == 200, accepted.text
    transfer = await client.post(
        f"{back.base}/v1/cases/{case['case_id']}/transfer",
        headers=auth("amy"),
        json={"to_team": "billing", "reason": "a billing question after all"},
    )
    assert transfer.status_code == 200, transfer.text
    moved = await wait_for(
        client,
        f"{front.base}/v1/cases",
        "bea",
        lambda cs: any(c["case_id"] == case["case_id"] for c in cs),
    )
    assert len(moved) == 7
    await wait_for(client, f"{back.base}/v1/cases", "boss", lambda cs: len(cs) == 2)
    handoffs = (await client.get(f"{front.base}/metrics")).text
    assert 'triage_router_floor_handoffs_total{kind="case_arrived"} 1.0' in handoffs

    # The front floor's worker dies: the other takes over both floors, nothing lost.
    front.kill()
    deadline = asyncio.get_running_loop().time() + 90
    while routed_teams((await client.get(f"{back.base}/metrics")).text) != {"care", "billing"}:
        assert asyncio.get_running_loop().time() < deadline, "the survivor routes both floors"
        await asyncio.sleep(0.5)
    back.wait_ready(timeout_s=60)
    later = feedback("Still late", category="delay", customer="f-new")
    # Follow-ups of the billing customers, tagged for the front floor: each joins the customer's
    # case on the back floor, whichever worker forwarded the customer's first message.
    follow_ups = [feedback(f"Any news? {n}", category="delay", customer=f"b-{n}") for n in range(6)]
    await produce(kafka, [record_of(m) for m in [later, *follow_ups]])
    front_cases = await wait_for(client, f"{back.base}/v1/cases", "boss", lambda c: len(c) == 3)
    assert case["case_id"] not in {c["case_id"] for c in front_cases}

    def followed(cases: list[dict[str, Any]]) -> bool:
        return sum(len(c["messages"]) for c in cases) == 6 * 2 + 1

    back_cases = await wait_for(client, f"{back.base}/v1/cases", "bea", followed)
    assert len(back_cases) == 7
    assert {c["team"] for c in back_cases} == {"billing"}
