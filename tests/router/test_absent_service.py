"""The running router sets away an agent whose console is gone, and says so on agents.events,
on the floor and in its metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from services.common.broker import EmbeddedBroker
from services.common.cases import AgentNotice
from services.common.kafka import KafkaSettings
from services.common.topics import agents_events
from tests.router.test_service import Router, auth, start_router, wait_for
from tests.support.kafka import read_records


async def test_an_agent_whose_console_is_gone_is_set_away(
    broker: EmbeddedBroker,
    kafka: KafkaSettings,
    tmp_path: Path,
    routers: list[Router],
    client: httpx.AsyncClient,
) -> None:
    router = await start_router(
        kafka, tmp_path, routers, env={"TRIAGE_ROUTER_DISCONNECT_GRACE_S": "1"}
    )
    base = router.base

    async def open_stream(agent: str, seconds: float) -> None:
        async with client.stream("GET", f"{base}/v1/stream", headers=auth(agent)) as stream:
            assert stream.status_code == 200
            await asyncio.sleep(seconds)

    # Bob reconnects within the grace period; Amy does not come back.
    await asyncio.gather(open_stream("amy", 0.5), open_stream("bob", 0.5))
    await open_stream("bob", 2.5)
    floor = await wait_for(
        client, f"{base}/v1/floor", "boss", lambda body: body["set_away"], timeout_s=15
    )
    assert [(a["agent_id"], a["reason"]) for a in floor["set_away"]] == [("amy", "disconnected")]
    me = (await client.get(f"{base}/v1/me", headers=auth("amy"))).json()
    assert (me["presence"], me["away_reason"]) == ("away", "disconnected")
    bob = (await client.get(f"{base}/v1/me", headers=auth("bob"))).json()
    assert bob["presence"] == "available"

    (record,) = await read_records(kafka, kafka.topic(agents_events), expected=1)
    notice = AgentNotice.model_validate_json(record.value)
    assert record.key == b"amy"
    assert (notice.agent_id, notice.reason, notice.team) == ("amy", "disconnected", "care")
    metrics = (await client.get(f"{base}/metrics")).text
    assert 'triage_router_agents_set_away_total{reason="disconnected"} 1.0' in metrics

    # Amy is back: the mark is gone.
    back = await client.put(
        f"{base}/v1/me/presence", headers=auth("amy"), json={"presence": "available"}
    )
    assert back.status_code == 200, back.text
    floor = (await client.get(f"{base}/v1/floor", headers=auth("boss"))).json()
    assert floor["set_away"] == []
