"""Delivery before acknowledgement: which failures are sent again, and what a caller gets back."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError

from services.common.streams import retriable, send_acknowledged


def test_passing_failures_are_retried_and_refusals_are_not() -> None:
    assert retriable(KafkaTimeoutError())
    assert retriable(KafkaConnectionError())
    assert retriable(ConnectionResetError())
    assert not retriable(MessageSizeTooLargeError())
    assert not retriable(ValueError("bad"))


class FlakyTopic:
    """A topic whose deliveries fail as scripted: value -> errors of its successive sends."""

    def __init__(self, script: dict[bytes, list[Exception]]) -> None:
        self.script = script
        self.sent: list[bytes] = []

    def get_topic_name(self) -> str:
        return "flaky"

    async def send(self, *, key: bytes | None, value: bytes) -> asyncio.Future[Any]:
        self.sent.append(value)
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        errors = self.script.get(value, [])
        if errors:
            delivery.set_exception(errors.pop(0))
        else:
            delivery.set_result("metadata")
        return delivery


async def test_a_passing_failure_is_sent_again_until_acknowledged() -> None:
    topic = FlakyTopic(
        {
            b"slow": [KafkaTimeoutError(), KafkaConnectionError()],
            b"huge": [MessageSizeTooLargeError()],
        }
    )
    outcomes = await send_acknowledged(
        topic, [(b"k", b"fine"), (b"k", b"slow"), (None, b"huge")], retry_s=0.01
    )
    assert outcomes[0] is None
    assert outcomes[1] is None
    assert isinstance(outcomes[2], MessageSizeTooLargeError)
    assert topic.sent.count(b"slow") == 3
    assert topic.sent.count(b"fine") == 1
    assert topic.sent.count(b"huge") == 1


async def test_nothing_to_send_returns_at_once() -> None:
    assert await send_acknowledged(FlakyTopic({}), []) == []


class EagerTopic(FlakyTopic):
    """A topic whose producer refuses some records as it is handed them, before any delivery:
    aiokafka raises a too-large record from ``send`` itself."""

    def __init__(self, refused_at_send: set[bytes]) -> None:
        super().__init__({})
        self.refused_at_send = refused_at_send

    async def send(self, *, key: bytes | None, value: bytes) -> asyncio.Future[Any]:
        if value in self.refused_at_send:
            self.sent.append(value)
            raise MessageSizeTooLargeError("the message is 1090000 bytes when serialized")
        return await super().send(key=key, value=value)


async def test_a_record_refused_as_it_is_sent_is_that_records_refusal_alone() -> None:
    topic = EagerTopic({b"huge"})
    outcomes = await send_acknowledged(
        topic, [(b"k", b"before"), (b"k", b"huge"), (b"k", b"after")], retry_s=0.01
    )
    assert outcomes[0] is None
    assert isinstance(outcomes[1], MessageSizeTooLargeError)
    assert outcomes[2] is None
    assert topic.sent == [b"before", b"huge", b"after"]


class OnePerPartitionTopic:
    """A producer that, like aiokafka's with one record per batch, takes a record for a key only
    once the key's previous record has left (here: until ``release`` for that key)."""

    def __init__(self) -> None:
        self.order: list[bytes] = []
        self.released: dict[bytes | None, asyncio.Event] = {}

    def get_topic_name(self) -> str:
        return "partitions"

    async def send(self, *, key: bytes | None, value: bytes) -> asyncio.Future[Any]:
        gate = self.released.setdefault(key, asyncio.Event())
        if any(v.split(b"-")[0] == (key or b"") for v in self.order):
            await gate.wait()  # the key's previous record has not left yet
        self.order.append(value)
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        delivery.set_result("metadata")
        return delivery


async def test_keys_are_handed_over_side_by_side_each_in_order() -> None:
    topic = OnePerPartitionTopic()
    records = [(b"a", b"a-1"), (b"a", b"a-2"), (b"b", b"b-1"), (b"a", b"a-3"), (b"b", b"b-2")]
    sending = asyncio.create_task(send_acknowledged(topic, records))
    await asyncio.sleep(0.01)
    assert topic.order == [b"a-1", b"b-1"], "key b waits for nothing of key a"
    topic.released[b"a"].set()
    topic.released[b"b"].set()
    assert await sending == [None] * 5
    assert [v for v in topic.order if v.startswith(b"a")] == [b"a-1", b"a-2", b"a-3"]
    assert [v for v in topic.order if v.startswith(b"b")] == [b"b-1", b"b-2"]
