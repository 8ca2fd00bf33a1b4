"""The review lane on the running router: a held team's unsure case waits for a supervisor,
who sees it with the runner-up tags and confirms it, and then it is offered."""

from __future__ import annotations

import copy
from pathlib import Path

import httpx

from services.common.broker import EmbeddedBroker
from services.common.kafka import KafkaSettings
from tests.router.factories import feedback
from tests.router.test_service import (
    ROSTER,
    Router,
    auth,
    produce,
    record_of,
    start_router,
    wait_for,
)
from tests.support.problems import assert_problem


async def test_a_held_case_waits_in_the_review_lane_until_confirmed(
    broker: EmbeddedBroker,
    kafka: KafkaSettings,
    tmp_path: Path,
    routers: list[Router],
    client: httpx.AsyncClient,
) -> None:
    roster = copy.deepcopy(ROSTER)
    roster["teams"][0]["review"] = "hold"
    router = await start_router(kafka, tmp_path, routers, roster_data=roster)
    base = router.base
    unsure = feedback("Where is my money?", customer="c-r", category="delay", unsure="billing")
    await produce(kafka, [record_of(unsure)])

    lane = await wait_for(client, f"{base}/v1/review", "boss", lambda items: len(items) == 1)
    (item,) = lane
    assert (item["team"], item["state"], item["hold"]) == ("care", "queued", True)
    (message,) = item["messages"]
    assert message["excerpt"] == "Where is my money?"
    assert (message["category"]["label"], message["category"]["runner_up"]) == ("delay", "billing")
    assert_problem(
        await client.get(f"{base}/v1/review", headers=auth("amy")), 403, "supervisor-only"
    )
    mine = (await client.get(f"{base}/v1/cases", headers=auth("amy"))).json()
    assert mine["items"] == [], "not offered while held"

    case_id = item["case_id"]
    reviewed = await client.post(
        f"{base}/v1/cases/{case_id}/relabel", headers=auth("boss"), json={}
    )
    assert reviewed.status_code == 200, reviewed.text
    case = reviewed.json()
    assert case["review"]["status"] == "done"
    assert case["review"]["reviewed_by"] == "boss"
    assert case["offer"]["agent_id"] == "amy"
    assert (await client.get(f"{base}/v1/review", headers=auth("boss"))).json()["items"] == []
