"""Read what the services wrote to a topic of the real broker."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.faust_app import TriageApp
from services.common.kafka import KafkaSettings, ensure_topics
from services.common.topics import TopicSpec


@dataclass(frozen=True)
class ConsumedRecord:
    """A record read back from a topic."""

    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    partition: int

    def json(self) -> dict[str, Any]:
        """The value as JSON."""
        decoded: dict[str, Any] = json.loads(self.value)
        return decoded


async def read_records(
    kafka: KafkaSettings,
    topic: str,
    *,
    expected: int,
    timeout_s: float = 10.0,
    settle_s: float = 0.5,
) -> list[ConsumedRecord]:
    """Read a topic from the beginning until ``expected`` records arrived, then ``settle_s`` more
    seconds to catch extra records that should not be there."""
    # No consumer group: assigning partitions directly avoids the broker's group-join delay.
    consumer = AIOKafkaConsumer(
        **kafka.client_kwargs(), group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[ConsumedRecord] = []
    try:
        loop = asyncio.get_running_loop()
        partitions = await _partitions(consumer, topic, timeout_s)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = loop.time() + timeout_s
        settle_until: float | None = None if expected > 0 else loop.time() + settle_s
        while True:
            now = loop.time()
            if settle_until is not None and now >= settle_until:
                break
            if now >= deadline:
                break
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                for message in messages:
                    records.append(
                        ConsumedRecord(
                            key=message.key,
                            value=message.value,
                            headers={k: bytes(v) for k, v in message.headers},
                            partition=message.partition,
                        )
                    )
            if settle_until is None and len(records) >= expected:
                settle_until = loop.time() + settle_s
    finally:
        await consumer.stop()
    return records


async def _partitions(
    consumer: AIOKafkaConsumer, topic: str, timeout_s: float
) -> list[TopicPartition]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        found = consumer.partitions_for_topic(topic)
        if found:
            return [TopicPartition(topic, p) for p in sorted(found)]
        if loop.time() >= deadline:
            raise AssertionError(f"topic {topic} does not exist")
        await consumer._client.force_metadata_update()  # refresh for a new topic
        await asyncio.sleep(0.1)


async def inprocess_app(
    kafka: KafkaSettings, name: str, datadir: Path, *, stock_faust: bool = False
) -> tuple[faust.App, Any]:
    """A faust app in this process on the real broker, and its one-partition input topic of
    raw bytes (created first, so the broker does not make it with its own partition count).

    The app is the workers' ``TriageApp``, or with ``stock_faust`` a plain ``faust.App`` on
    faust's own ``kafka://`` transport (faust's code alone, for the tests that show its faults).
    """
    spec = TopicSpec(name=f"{name}-input", partitions=1, retention_ms=3_600_000, description="")
    await ensure_topics(kafka, [spec])
    options = kafka.faust_options()
    app_class: type[faust.App] = TriageApp
    if stock_faust:
        del options["fetch_max_wait_ms"]
        options["broker"] = ";".join(f"kafka://{server}" for server in kafka.bootstrap.split(","))
        app_class = faust.App
    app = app_class(
        kafka.topic_prefix + name,
        **options,
        store="memory://",
        datadir=str(datadir),
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        topic_partitions=1,
        autodiscover=False,
    )
    topic = app.topic(
        kafka.topic(spec),
        partitions=1,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    return app, topic
