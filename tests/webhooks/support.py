"""What the webhook tests share: case events to publish, and a real HTTP receiver."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaProducer

from services.common.broker import free_port
from services.common.cases import (
    Case,
    CaseEvent,
    CaseEventType,
    CaseMessage,
    CaseState,
    Priority,
    case_event_id,
)
from services.common.kafka import KafkaSettings
from services.common.messages import Category, Channel, CustomerHistory, DifficultType, Facts, Tag
from services.common.topics import cases_events

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="


def case_event(
    case_id: uuid.UUID,
    version: int,
    kind: CaseEventType = CaseEventType.CREATED,
    *,
    platform: str | None = "helpdesk",
) -> CaseEvent:
    """A valid case event of version ``version`` of a case."""
    at = T0 + timedelta(seconds=version)
    tag = Tag(label="billing", probability=0.9)
    message = CaseMessage(
        event_id=uuid.uuid5(case_id, "m1"),
        channel=Channel.EMAIL,
        received_at=T0,
        text="I was charged twice for my order.",
        sentiment=Tag(label="negative", probability=0.8),
        sentiment_score=-0.7,
        category=tag,
        difficult=Tag(label="none", probability=0.9),
        needs_review=False,
    )
    case = Case(
        case_id=case_id,
        version=version,
        state=CaseState.RESOLVED if kind == CaseEventType.RESOLVED else CaseState.QUEUED,
        team="billing",
        channel=Channel.EMAIL,
        platform=platform,
        customer_id="c-1",
        messages=[message],
        category=Category.BILLING,
        difficult=DifficultType.NONE,
        hostile=False,
        guidance="Be clear.",
        priority=Priority.P3,
        base_priority=Priority.P3,
        priority_score=10.0,
        priority_components=[],
        facts=Facts(),
        history=CustomerHistory(
            window_days=30,
            recent_messages=0,
            recent_complaints=0,
            recent_negative=0,
            repeat_complainer=False,
        ),
        created_at=T0,
        updated_at=at,
    )
    return CaseEvent(
        event_id=case_event_id(case_id, version),
        type=kind,
        case_id=case_id,
        version=version,
        at=at,
        actor="router",
        case=case,
    )


async def publish(kafka: KafkaSettings, events: list[CaseEvent]) -> None:
    """Write the events to cases.events as the router does: JSON, keyed by case id."""
    producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all")
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(
                kafka.topic(cases_events),
                value=event.model_dump_json().encode(),
                key=str(event.case_id).encode(),
            )
    finally:
        await producer.stop()


async def publish_raw(kafka: KafkaSettings, value: bytes, key: bytes) -> None:
    """Write an arbitrary record to cases.events."""
    producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(kafka.topic(cases_events), value=value, key=key)
    finally:
        await producer.stop()


@dataclass
class Received:
    """One request the receiver got."""

    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def event(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.body)
        return decoded


#: Decides the answer to a request: an HTTP status, or None to never answer (a hang).
Behaviour = Callable[[dict[str, str], int], int | None]


def always_ok(headers: dict[str, str], seen: int) -> int | None:
    return 200


@dataclass
class Receiver:
    """A real HTTP server that records every webhook request it gets."""

    behaviour: Behaviour = always_ok
    requests: list[Received] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    _runner: web.AppRunner | None = None
    _seen: dict[str, int] = field(default_factory=dict)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        body = await request.read()
        webhook_id = headers.get("webhook-id", "")
        seen = self._seen.get(webhook_id, 0)
        self._seen[webhook_id] = seen + 1
        status = self.behaviour(headers, seen)
        if status is None:
            await asyncio.sleep(3600)  # never answers: the sender's timeout decides
            status = 504
        self.requests.append(Received(headers=headers, body=body, status=status))
        self._arrived.set()
        return web.Response(status=status)

    def accepted(self) -> list[Received]:
        """The requests answered 2xx, in the order they arrived."""
        return [r for r in self.requests if 200 <= r.status < 300]

    async def wait_accepted(self, count: int, *, timeout_s: float = 20.0) -> list[Received]:
        """Wait until ``count`` distinct events were accepted."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len({r.headers["webhook-id"] for r in self.accepted()}) < count:
            left = deadline - loop.time()
            if left <= 0:
                got = len({r.headers["webhook-id"] for r in self.accepted()})
                raise AssertionError(f"{got} of {count} events accepted in {timeout_s} s")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), min(left, 0.5))
        return self.accepted()
