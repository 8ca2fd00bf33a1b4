"""The agent API and the worker's runtime without Kafka: engine state read on the event loop
only, no token hashes served, identities fixed by the roster, live streams that end when
their agent loses the right to them, and a clock that recovers from a lost tick."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.common.cases import CaseEvent
from services.router.api import create_api, metrics_payload
from services.router.app import RouterRuntime
from services.router.clock import TickClock
from services.router.commands import Action, Command, CommandResult, Status
from services.router.engine import Engine
from services.router.metrics import RouterMetrics
from services.router.roster import hash_token
from services.router.settings import RouterSettings
from tests.router.factories import T0, agent, command, engine, feedback

BOSS = agent("boss", tier="supervisor", presence="away", token_sha256=hash_token("t-boss"))
AMY = agent("amy", token_sha256=hash_token("t-amy"))


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class FakeRuntime:
    """The runtime as the API sees it; remembers the threads the engine was read from."""

    def __init__(self, router: Engine) -> None:
        self.router = router
        self.metrics = RouterMetrics()
        self.metrics.watch(self._engine_for_metrics)
        self.threads: set[int] = set()
        self.submitted: list[Command] = []

    def _engine_for_metrics(self) -> Engine:
        self.threads.add(threading.get_ident())
        return self.router

    @property
    def engine(self) -> Engine:
        self.threads.add(threading.get_ident())
        return self.router

    @property
    def ready(self) -> bool:
        return True

    async def submit(self, command: Command) -> CommandResult:
        self.submitted.append(command)
        result = self.router.apply(command, command.at).result
        assert result is not None
        return result

    def subscribe(self, agent_id: str, supervisor: bool, **kwargs: Any) -> Any:
        return asyncio.Queue()

    def unsubscribe(self, queue: Any) -> None:
        return None

    def metrics_text(self) -> bytes:
        return metrics_payload(self.metrics.registry)


@pytest.fixture
def router() -> Engine:
    router = engine(BOSS, AMY)
    router.apply(feedback(customer="c-1"), T0)
    return router


@pytest.fixture
async def api(router: Engine) -> AsyncIterator[tuple[httpx.AsyncClient, FakeRuntime]]:
    runtime = FakeRuntime(router)
    transport = httpx.ASGITransport(app=create_api(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
        yield client, runtime


# ------------------------------------------------------------------ item 11


async def test_engine_state_is_read_on_the_event_loop_only(
    api: tuple[httpx.AsyncClient, FakeRuntime], router: Engine
) -> None:
    client, runtime = api
    loop_thread = threading.get_ident()
    case_id = next(iter(router.records))
    for path in (
        "/v1/me",
        "/v1/cases",
        f"/v1/cases/{case_id}",
        "/v1/teams",
        "/v1/floor",
        "/v1/queues",
        "/v1/agents",
        "/metrics",
    ):
        runtime.threads.clear()
        response = await client.get(path, headers=headers("t-boss"))
        assert response.status_code == 200, (path, response.text)
        assert runtime.threads == {loop_thread}, f"{path} read the engine from another thread"


# ------------------------------------------------------------------ item 8


async def test_no_token_hash_is_served(api: tuple[httpx.AsyncClient, FakeRuntime]) -> None:
    client, _ = api
    for path in ("/v1/agents", "/v1/me"):
        response = await client.get(path, headers=headers("t-boss"))
        assert response.status_code == 200
        assert hash_token("t-boss") not in response.text, path
        assert hash_token("t-amy") not in response.text, path


async def test_put_agent_cannot_set_a_token_or_a_tier(
    api: tuple[httpx.AsyncClient, FakeRuntime], router: Engine
) -> None:
    client, _ = api
    body = {**AMY, "token_sha256": hash_token("t-boss")}
    response = await client.put("/v1/agents/amy", json=body, headers=headers("t-boss"))
    assert response.status_code == 422
    body = {**AMY, "token_sha256": None, "tier": "supervisor"}
    response = await client.put("/v1/agents/amy", json=body, headers=headers("t-boss"))
    assert response.status_code == 422
    assert router.agents["amy"].profile.tier == "frontline"
    body = {**AMY, "token_sha256": None, "skills": {"delay": 2}}
    response = await client.put("/v1/agents/amy", json=body, headers=headers("t-boss"))
    assert response.status_code == 200, response.text
    assert router.agent_by_token("t-amy") is not None


async def test_csat_is_a_supervisors_action(
    api: tuple[httpx.AsyncClient, FakeRuntime], router: Engine
) -> None:
    client, _ = api
    case_id = next(iter(router.records))
    router.apply(command("amy", Action.ACCEPT, case_id), T0)
    router.apply(command("amy", Action.RESOLVE, case_id), T0)
    url = f"/v1/cases/{case_id}/csat"
    response = await client.post(url, json={"score": 5}, headers=headers("t-amy"))
    assert response.status_code == 403
    response = await client.post(url, json={"score": 3}, headers=headers("t-boss"))
    assert response.status_code == 200, response.text
    assert response.json()["csat"] == 3


async def test_a_transfer_names_a_team_or_an_agent(
    api: tuple[httpx.AsyncClient, FakeRuntime], router: Engine
) -> None:
    # The command model cannot carry a transfer to nowhere: the API refuses it before sending.
    client, runtime = api
    case_id = next(iter(router.records))
    url = f"/v1/cases/{case_id}/transfer"
    response = await client.post(url, json={"reason": "wrong desk"}, headers=headers("t-boss"))
    assert response.status_code == 422
    assert response.json()["detail"] == "give to_team or to_agent"
    assert runtime.submitted == []
    response = await client.post(url, json={"to_team": "care"}, headers=headers("t-boss"))
    assert response.status_code == 200, response.text
    assert len(runtime.submitted) == 1


def _runtime(router: Engine) -> RouterRuntime:
    runtime = RouterRuntime(
        settings=RouterSettings(), metrics=RouterMetrics(), build_engine=lambda: router
    )
    runtime.current = router
    return runtime


def _event(router: Engine) -> tuple[CaseEvent, bytes]:
    out = router.apply(feedback(customer=f"c-{uuid.uuid4().hex[:6]}"), T0)
    return out.events[0], out.payloads[0]


async def test_a_stream_ends_when_its_agent_is_removed_or_demoted() -> None:
    router = engine(BOSS, AMY, agent("sue", tier="supervisor", token_sha256=hash_token("t-sue")))
    runtime = _runtime(router)
    amy = runtime.subscribe("amy", False, token_sha256=hash_token("t-amy"))
    boss = runtime.subscribe("boss", True, token_sha256=hash_token("t-boss"))
    sue = runtime.subscribe("sue", True, token_sha256=hash_token("t-sue"))
    out = router.apply(command("boss", Action.REMOVE_AGENT, to_agent="amy"), T0)
    assert out.result is not None
    assert out.result.status == Status.OK
    runtime.refresh_streams()
    assert amy.get_nowait() is None, "the removed agent's stream goes on"
    # A restart with a roster where the boss is no longer a supervisor, and sue's token rotated.
    demoted = engine(
        agent("boss", token_sha256=hash_token("t-boss")),
        agent("sue", tier="supervisor", token_sha256=hash_token("t-sue-2")),
    )
    runtime.current = demoted
    runtime.refresh_streams()
    assert boss.get_nowait() is None, "the demoted supervisor keeps seeing every case"
    assert sue.get_nowait() is None, "a rotated token's stream goes on"
    assert runtime.subscribers == []
    event, payload = _event(demoted)
    runtime.publish(event, payload)  # nobody left to send to


# ------------------------------------------------------------------ item 9


def test_a_lost_tick_is_sent_again() -> None:
    clock = TickClock(resend_after_s=5, heartbeat_s=30)
    now = datetime(2026, 11, 23, tzinfo=UTC)
    due = now - timedelta(seconds=1)
    assert clock.should_send(next_due=due, now=now, monotonic=100)
    clock.sent(100)
    # Not applied (the worker that applied it failed, or another worker took it):
    assert not clock.should_send(next_due=due, now=now, monotonic=102)
    assert clock.should_send(next_due=due, now=now, monotonic=106)
    clock.sent(106)
    clock.applied(107)
    assert clock.should_send(next_due=due, now=now, monotonic=107.5)
    clock.sent(108)
    clock.failed()
    assert clock.should_send(next_due=due, now=now, monotonic=108.1)


def test_the_clock_beats_while_nothing_is_due() -> None:
    clock = TickClock(resend_after_s=5, heartbeat_s=30)
    now = datetime(2026, 11, 23, tzinfo=UTC)
    assert clock.should_send(next_due=None, now=now, monotonic=0), "first beat at start"
    clock.sent(0)
    clock.applied(0.5)
    assert not clock.should_send(next_due=None, now=now, monotonic=20)
    assert not clock.should_send(next_due=now + timedelta(hours=1), now=now, monotonic=20)
    assert clock.should_send(next_due=None, now=now, monotonic=31)


def test_the_last_applied_tick_is_a_metric() -> None:
    metrics = RouterMetrics()
    metrics.tick_applied(1_800_000_000.0)
    text = metrics_payload(metrics.registry).decode()
    assert 'triage_router_tick_applied_timestamp_seconds{floor="main"} 1.8e+09' in text


async def test_request_durations_are_recorded_by_route_template(router: Engine) -> None:
    runtime = FakeRuntime(router)
    app = create_api(runtime, registry=runtime.metrics.registry)
    case_id = next(iter(router.records))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
        assert (await client.get(f"/v1/cases/{case_id}", headers=headers("t-boss"))).is_success
        missing = f"/v1/cases/{uuid.uuid4()}"
        assert (await client.get(missing, headers=headers("t-boss"))).status_code == 404
        assert (await client.get("/v1/me")).status_code == 401
        text = (await client.get("/metrics", headers=headers("t-boss"))).text
    for line in (
        'http_request_duration_seconds_count{handler="/v1/cases/{case_id}",method="GET",'
        'status="200"} 1.0',
        'http_requests_total{handler="/v1/cases/{case_id}",method="GET",status="404"} 1.0',
        'http_requests_total{handler="/v1/me",method="GET",status="401"} 1.0',
    ):
        assert line in text, line
    assert str(case_id) not in text
    assert "process_resident_memory_bytes" in text
