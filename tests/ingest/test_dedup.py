"""The memory of accepted source events."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.common.errors import BrokerUnavailable
from services.ingest.dedup import AcceptedEvents


async def test_accepts_once_and_answers_repeats_with_the_original_id() -> None:
    accepted = AcceptedEvents(ttl_s=60, max_entries=10)
    calls = 0

    async def publish() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)

    first_id, second_id = uuid.uuid4(), uuid.uuid4()
    outcomes = await asyncio.gather(
        *(accepted.accept_once("k", first_id, publish) for _ in range(5)),
    )
    assert calls == 1
    assert [o.duplicate for o in outcomes].count(False) == 1
    assert {o.event_id for o in outcomes} == {first_id}
    later = await accepted.accept_once("k", second_id, publish)
    assert later.duplicate
    assert later.event_id == first_id


async def test_failed_publish_is_forgotten_and_shared_with_waiters() -> None:
    accepted = AcceptedEvents(ttl_s=60, max_entries=10)

    async def fail() -> None:
        await asyncio.sleep(0.01)
        raise BrokerUnavailable("down")

    results = await asyncio.gather(
        *(accepted.accept_once("k", uuid.uuid4(), fail) for _ in range(3)),
        return_exceptions=True,
    )
    assert all(isinstance(r, BrokerUnavailable) for r in results)
    assert not accepted.seen("k")

    async def succeed() -> None:
        return None

    assert not (await accepted.accept_once("k", uuid.uuid4(), succeed)).duplicate


def test_bounded_and_expiring(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("services.ingest.dedup.time.monotonic", lambda: clock[0])
    accepted = AcceptedEvents(ttl_s=60, max_entries=3)
    for n in range(5):
        accepted.remember(f"k{n}", uuid.uuid4())
    assert len(accepted) == 3
    assert not accepted.seen("k0")
    assert accepted.seen("k4")
    clock[0] += 61
    assert not accepted.seen("k4")
    accepted.remember("new", uuid.uuid4())
    assert len(accepted) == 1
