"""The router worker applying its inbox in batches on the real broker: a backlog produced at
once, the worker killed (SIGKILL) while it works through it and restarted, and every message
ends in exactly one case, each case event is published with one content, and no case is
assigned twice."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import httpx
import pytest

from services.common.broker import EmbeddedBroker
from services.common.kafka import KafkaSettings, ensure_topics
from services.common.topics import ALL_TOPICS, cases_events
from tests.router.factories import feedback
from tests.router.test_service import Router, produce, record_of, wait_for
from tests.support.kafka import read_records

pytestmark = pytest.mark.timeout(300)
MESSAGES = 400


async def applied_feedback(http: httpx.AsyncClient, base: str) -> int:
    text = (await http.get(f"{base}/metrics")).text
    for line in text.splitlines():
        if line.startswith('triage_router_inbox_apply_seconds_count{kind="feedback"}'):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


async def test_a_worker_killed_inside_a_backlog_resumes_without_loss_or_repeats(
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
    messages = [
        feedback(f"Parcel {n} late", customer=f"b-{n}", category="delay") for n in range(MESSAGES)
    ]
    await produce(kafka, [record_of(m) for m in messages])
    # Killed part-way through the backlog, in the middle of a batch as likely as not.
    deadline = asyncio.get_running_loop().time() + 60
    while await applied_feedback(client, first.base) < MESSAGES // 4:
        assert asyncio.get_running_loop().time() < deadline, "the worker applied nothing"
        await asyncio.sleep(0.05)
    first.kill()

    second = Router(kafka, tmp_path, app_id)
    routers.append(second)
    second.start()
    second.wait_ready()
    cases = await wait_for(
        client,
        f"{second.base}/v1/cases?limit=1000",
        "boss",
        lambda cs: len(cs) >= MESSAGES,
        timeout_s=120,
    )
    assert len(cases) == MESSAGES, "a message made two cases"
    events = await read_records(
        kafka, kafka.topic(cases_events), expected=2 * MESSAGES, timeout_s=60, settle_s=2
    )
    created = [r.json()["case_id"] for r in events if r.json()["type"] == "created"]
    assert sorted(set(created)) == sorted(c["case_id"] for c in cases)
    contents: dict[str, set[str]] = {}
    for r in events:
        body = r.json()
        contents.setdefault(body["event_id"], set()).add(json.dumps(body, sort_keys=True))
    changed = [event_id for event_id, seen in contents.items() if len(seen) > 1]
    assert not changed, f"{len(changed)} events published again with other content"
    agents = await wait_for(client, f"{second.base}/v1/agents", "boss", lambda found: True)
    held = [case_id for a in agents for case_id in a["cases"]]
    assert len(held) == len(set(held)), "a case is held by two agents"
    for agent in agents:
        for channel, used in agent["load"].items():
            assert used <= agent["profile"]["channels"][channel]
