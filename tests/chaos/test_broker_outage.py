"""Broker outages that keep the broker's data (clients reach it through a proxy that resets every
connection and refuses new ones, as a restarting Kafka broker does): ingest answers 503, never
202, while the broker is away, recovers by itself and loses nothing it accepted; the classifier
and router workers resume on their own, with no restart and no lost or doubled case."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.kafka import KafkaSettings
from services.common.topics import cases_events, feedback_classified, feedback_received
from tests.ingest.conftest import DEV_AUTH, running_ingest
from tests.support.kafka import read_records
from tests.support.load import Customers, TopicTail
from tests.support.proxy import ProxiedBroker
from tests.support.stack import Stack, StackOptions
from tests.support.verify import (
    CaseEventView,
    ClassifiedView,
    Findings,
    Window,
    case_event_view,
    check_cases,
    check_classified,
    check_ingest,
    classified_view,
)

RATE = 20.0  # posts a second, during the outage too


@pytest.fixture
async def proxied(tmp_path: Path) -> AsyncIterator[ProxiedBroker]:
    broker = ProxiedBroker(tmp_path / "broker.log")
    await broker.start()
    yield broker
    await broker.stop()


@dataclass(frozen=True)
class Attempt:
    source_id: str
    sent: float
    answered: float
    status: int
    event_id: str | None


def _event(source_id: str) -> dict[str, Any]:
    return {
        "id": source_id,
        "channel": "chat",
        "customer": {"id": f"c-{source_id}"},
        "text": "Where is my refund?",
    }


@pytest.mark.timeout(120)
async def test_ingest_refuses_during_an_outage_and_loses_nothing_accepted(
    proxied: ProxiedBroker,
) -> None:
    kafka = KafkaSettings(bootstrap=proxied.bootstrap, topic_prefix=f"o{uuid.uuid4().hex[:8]}.")
    attempts: list[Attempt] = []
    loop = asyncio.get_running_loop()
    async with running_ingest(kafka, produce_timeout_s=1.0, retry_after_s=1) as client:

        async def post(source_id: str) -> Attempt:
            sent = loop.time()
            response = await client.post("/v1/feedback", json=_event(source_id), headers=DEV_AUTH)
            body = response.json()
            attempt = Attempt(
                source_id, sent, loop.time(), response.status_code, body.get("event_id")
            )
            attempts.append(attempt)
            return attempt

        posts: list[asyncio.Task[Attempt]] = []

        async def steady(seconds: float, phase: str) -> None:
            """One post every 1/RATE s, each on its own (a slow answer delays no other)."""
            start = loop.time()
            n = 0
            while loop.time() < start + seconds:
                posts.append(asyncio.create_task(post(f"{phase}-{n}")))
                n += 1
                await asyncio.sleep(start + n / RATE - loop.time())

        await steady(2.0, "before")
        cut_started = loop.time()
        await proxied.proxy.cut()
        cut_done = loop.time()
        outage = asyncio.create_task(steady(6.0, "during"))
        await asyncio.sleep(3.0)
        assert (await client.get("/readyz")).status_code == 503
        assert "triage_ingest_broker_up 0.0" in (await client.get("/metrics")).text
        await outage
        restored_at = loop.time()
        await proxied.proxy.restore()
        await steady(8.0, "after")
        await asyncio.gather(*posts)
        assert (await client.get("/readyz")).status_code == 200

        statuses = Counter(a.status for a in attempts)
        assert set(statuses) <= {202, 503}, statuses
        while_down = [a for a in attempts if a.sent >= cut_done and a.answered <= restored_at]
        assert while_down, "no request was answered during the outage"
        assert all(a.status == 503 for a in while_down), "202 while the broker was away"
        recovered = [a for a in attempts if a.status == 202 and a.sent >= restored_at]
        assert recovered, "ingest did not recover by itself"
        assert min(a.sent for a in recovered) - restored_at < 10

        # A platform posts refused events again; each is then accepted once more.
        refused = sorted(
            {a.source_id for a in attempts} - {a.source_id for a in attempts if a.status == 202}
        )
        assert refused
        for source_id in refused:
            again = await post(source_id)
            assert again.status in (200, 202), again

    accepted = {a.event_id: a.source_id for a in attempts if a.status in (200, 202)}
    records = await read_records(
        kafka, kafka.topic(feedback_received), expected=len(accepted), timeout_s=30, settle_s=2
    )
    copies = Counter(r.json()["event_id"] for r in records)
    assert set(copies) == set(accepted), "lost, or on the topic without a 202"
    # One copy of everything, except where an attempt's fate was unknown to ingest (in flight
    # when the connections were reset, or answered 503): without an idempotent producer the
    # broker may have written it anyway, and the event id is the same, so consumers drop it.
    ambiguous = {
        a.source_id
        for a in attempts
        if a.status == 503 or (a.sent < cut_done and a.answered > cut_started)
    }
    doubled = {accepted[e] for e, n in copies.items() if n > 1}
    assert doubled <= ambiguous, doubled - ambiguous
    assert all(n <= 2 for n in copies.values())


@pytest.mark.timeout(300)
async def test_workers_resume_after_an_outage_without_a_restart(
    proxied: ProxiedBroker, tmp_path: Path
) -> None:
    stack = Stack(tmp_path / "stack", StackOptions(), bootstrap=proxied.bootstrap)
    classified: list[ClassifiedView] = []
    events: list[CaseEventView] = []
    tails: list[TopicTail] = []
    try:
        await stack.start()
        pids = stack.pids()
        for spec, handler in (
            (feedback_classified, lambda m, t: classified.append(classified_view(m.value, t))),
            (cases_events, lambda m, t: events.append(case_event_view(m.value, t))),
        ):
            tail = TopicTail(proxied.proxy.bootstrap, spec.full_name(stack.topic_prefix), handler)
            await tail.start()
            tails.append(tail)
        assert stack.ingest is not None
        ingest = stack.ingest.base
        customers = Customers(
            lambda: ingest, rate=10, count=300, run_id=stack.run_id, retry_after_s=1.0
        )
        posting = asyncio.create_task(customers.run())
        await asyncio.sleep(8)
        # Longer than the workers' 3 s group session: the broker forgets them, they rejoin.
        outage = Window(time.time(), 0.0)
        await proxied.proxy.cut()
        await asyncio.sleep(10)
        await proxied.proxy.restore()
        outage = Window(outage.start, time.time())
        await posting
        accepted = {p.event_id: p for p in customers.posted if p.event_id is not None}
        assert len(accepted) == len(customers.posted), "a post was never accepted"
        assert any(a[2] == "503" for p in customers.posted for a in p.attempts)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        while loop.time() < deadline:
            if set(accepted) <= {m for e in events for m in e.messages}:
                break
            await asyncio.sleep(1)
        assert stack.pids() == pids, "a service was restarted or died"
        async with httpx.AsyncClient(timeout=5) as http:
            for process in [stack.ingest, *stack.classifiers, *stack.routers]:
                assert (await http.get(f"{process.base}/readyz")).status_code == 200
        for tail in tails:
            assert await tail.catch_up()
        findings = Findings()
        check_ingest(findings, customers.posted, allow_503=True)
        # The workers' producers retry sends the outage cut off: repeats around it are expected.
        check_classified(findings, accepted, classified, kills=[outage], window_s=30)
        check_cases(
            findings,
            accepted,
            events,
            final_versions=None,
            holdings=None,
            checked_at=time.time(),
        )
        assert findings.ok, findings.report()
    finally:
        for tail in tails:
            await tail.stop()
        stack.stop()
