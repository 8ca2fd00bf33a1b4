"""Delivery before acknowledgement: which failures are sent again, what a caller gets back, and
how records are handed to the producer (one chain per partition)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from faust.exceptions import NotReady
from faust.types import TP

from services.common.kafka import KafkaSettings, ensure_topics
from services.common.streams import partition_chains, raw_topic, retriable, send_acknowledged
from services.common.topics import TopicSpec
from tests.support.kafka import inprocess_app


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

    async def send(
        self, *, key: bytes | None, value: bytes, partition: int | None = None
    ) -> asyncio.Future[Any]:
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

    async def send(
        self, *, key: bytes | None, value: bytes, partition: int | None = None
    ) -> asyncio.Future[Any]:
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

    async def send(
        self, *, key: bytes | None, value: bytes, partition: int | None = None
    ) -> asyncio.Future[Any]:
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


class Producer:
    """A stand-in for faust's producer: the partition of each key, as ``key_partition`` says."""

    def __init__(self, partitions: dict[bytes, int] | None) -> None:
        self.partitions = partitions

    def key_partition(self, topic: str, key: bytes) -> TP:
        if self.partitions is None:
            raise NotReady("producer not started")
        return TP(topic, self.partitions[key])


class PartitionedTopic:
    """A faust-like topic whose producer, like aiokafka's when a partition's batch is full,
    takes a record for a partition only once that partition's previous record has left (here:
    until ``release``), and counts the sends waiting on each partition."""

    def __init__(self, partitions: dict[bytes, int] | None) -> None:
        self.app = SimpleNamespace(producer=Producer(partitions))
        self.partitions = partitions or {}
        self.order: list[bytes] = []
        self.released: dict[int, asyncio.Event] = {}
        self.waiting: dict[int, int] = {}
        self.most_waiting = 0

    def get_topic_name(self) -> str:
        return "partitioned"

    async def send(
        self, *, key: bytes | None, value: bytes, partition: int | None = None
    ) -> asyncio.Future[Any]:
        part = self.partitions[key or b""] if partition is None else partition
        gate = self.released.setdefault(part, asyncio.Event())
        if any(self.partitions[v.split(b"-")[0]] == part for v in self.order):
            self.waiting[part] = self.waiting.get(part, 0) + 1
            self.most_waiting = max(self.most_waiting, *self.waiting.values())
            await gate.wait()  # the partition's previous record has not left yet
            self.waiting[part] -= 1
        self.order.append(value)
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        delivery.set_result("metadata")
        return delivery


def test_records_are_chained_by_the_partition_the_producer_gives_their_key() -> None:
    topic = PartitionedTopic({b"a": 0, b"b": 1, b"c": 0})
    keys = [b"a", b"b", b"c", None, b"a", None, b"c"]
    assert partition_chains(topic, keys) == [[0, 2, 4, 6], [1], [3, 5]]
    assert partition_chains(topic, keys, partition=2) == [list(range(7))]
    assert partition_chains(topic, []) == []


def test_without_a_producer_that_can_say_records_are_chained_by_key() -> None:
    keys = [b"a", b"b", b"c", b"a"]
    assert partition_chains(PartitionedTopic(None), keys) == [[0, 3], [1], [2]]
    assert partition_chains(FlakyTopic({}), keys) == [[0, 3], [1], [2]]


async def test_one_partitions_records_wait_one_at_a_time_and_no_other_partition_waits() -> None:
    keys = {b"a": 0, b"b": 0, b"c": 0, b"d": 1}
    topic = PartitionedTopic({**keys, b"": 1})
    records = [(key, key + b"-" + str(n).encode()) for n in range(3) for key in keys]
    sending = asyncio.create_task(send_acknowledged(topic, records))
    await asyncio.sleep(0.01)
    assert topic.order == [b"a-0", b"d-0"], "partition 1 waits for nothing of partition 0"
    assert topic.waiting == {0: 1, 1: 1}, "one send waits per partition, not one per key"
    for gate in topic.released.values():
        gate.set()
    assert await sending == [None] * len(records)
    assert topic.most_waiting == 1
    for key in keys:
        assert [v for v in topic.order if v.startswith(key)] == [
            key + b"-0",
            key + b"-1",
            key + b"-2",
        ]


async def test_on_the_broker_each_key_stays_in_order_on_the_partition_its_chain_is_for(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    app, _ = await inprocess_app(kafka, "chains", tmp_path)
    spec = TopicSpec(name="chains-out", partitions=3, retention_ms=3_600_000, description="")
    await ensure_topics(kafka, [spec])
    topic = raw_topic(app, kafka, spec)
    await app.maybe_start_producer()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        keys = [f"case-{n}".encode() for n in range(12)]
        assert await send_acknowledged(topic, [(keys[0], b"case-0 first")]) == [None]
        # The producer knows the topic's partitions now: one chain per partition.
        chains = partition_chains(topic, keys)
        assert len(chains) <= 3
        said = {key: app.producer.key_partition(topic.get_topic_name(), key) for key in keys}
        for chain in chains:
            assert len({said[keys[n]] for n in chain}) == 1
        records = [(key, key + b" " + str(n).encode()) for n in range(5) for key in keys]
        assert await send_acknowledged(topic, records) == [None] * len(records)
        partitions = [TopicPartition(topic.get_topic_name(), p) for p in range(3)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        landed: dict[bytes, list[tuple[int, bytes]]] = {}
        deadline = asyncio.get_running_loop().time() + 30
        while sum(map(len, landed.values())) < len(records) + 1:
            assert asyncio.get_running_loop().time() < deadline, landed
            for tp, batch in (await consumer.getmany(timeout_ms=500)).items():
                for record in batch:
                    assert record.key is not None
                    assert record.value is not None
                    landed.setdefault(record.key, []).append((tp.partition, record.value))
        for key in keys:
            assert {p for p, _ in landed[key]} == {said[key].partition}
            values = [v for _, v in landed[key] if not v.endswith(b"first")]
            assert values == [key + b" " + str(n).encode() for n in range(5)]
    finally:
        await consumer.stop()
        await app.producer.stop()
        await app.stop()
