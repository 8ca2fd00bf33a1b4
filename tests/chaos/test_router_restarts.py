"""Router restarts under load, without the model: classified messages are produced straight to
``feedback.classified`` at a steady rate while the router worker is killed with SIGKILL and
restarted a few times, each restart recovering a few thousand cases from its changelog. Every
message must end up in a case.

This found two ways of losing messages around a restart: the forwarder acknowledged a
classified record while its inbox record was still in the producer's buffer, and faust counted
records fetched but never delivered (a fetch in flight during recovery) as a gap in the log and
committed past them. Kept out of the default run (``-m slow``, about 4 minutes)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from services.common.topics import cases_events, feedback_classified
from tests.router.factories import feedback
from tests.support.load import TopicTail
from tests.support.stack import Stack, StackOptions

PRELOAD = 1500  # cases to recover at each restart
KILLS = 4
RATE = 20.0


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_router_restarts_under_load_lose_nothing(tmp_path: Path) -> None:
    stack = Stack(tmp_path, StackOptions(classifiers=0))
    in_cases: set[str] = set()
    sent: list[str] = []

    def on_case_event(message: Any, read_at: float) -> None:
        in_cases.update(m["event_id"] for m in json.loads(message.value)["case"]["messages"])

    producer: AIOKafkaProducer | None = None
    tail: TopicTail | None = None
    try:
        await stack.start()
        tail = TopicTail(stack.bootstrap, cases_events.full_name(stack.topic_prefix), on_case_event)
        await tail.start()
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
        await producer.start()
        topic = feedback_classified.full_name(stack.topic_prefix)

        async def send(n: int) -> None:
            assert producer is not None
            classified = feedback(f"Late parcel {n}", customer=f"p-{n}").feedback
            key = classified.feedback.customer.id.encode()
            await producer.send_and_wait(topic, classified.model_dump_json().encode(), key=key)
            sent.append(str(classified.feedback.event_id))

        for n in range(PRELOAD):
            await send(n)

        async def steady(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                await send(len(sent))
                await asyncio.sleep(1 / RATE)

        for _ in range(KILLS):
            posting = asyncio.create_task(steady(40))
            await asyncio.sleep(5)
            await stack.kill_and_restart("router", 0)
            await posting
        settled, last = 0, -1
        while not set(sent) <= in_cases and settled < 40:
            await asyncio.sleep(1)
            settled = settled + 1 if len(in_cases) == last else 0
            last = len(in_cases)
        lost = [event_id for event_id in sent if event_id not in in_cases]
        assert not lost, f"{len(lost)} of {len(sent)} classified messages never reached a case"
    finally:
        if producer is not None:
            await producer.stop()
        if tail is not None:
            await tail.stop()
        stack.stop()
