"""A table's changes are on the broker once ``acknowledged()`` returns (on the real broker,
with a faust app in this process)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from services.common.kafka import KafkaSettings
from services.common.tables import acknowledged_table
from tests.support.kafka import inprocess_app


async def test_changes_are_on_the_changelog_when_acknowledged_returns(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    app, topic = await inprocess_app(kafka, "tables", tmp_path)
    name = topic.get_topic_name()
    table = acknowledged_table(app, "counts", default=None, partitions=1, key_type=str)
    changelog = TopicPartition(table.changelog_topic.get_topic_name(), 0)
    # For each record: how many changes were written, and how many the changelog then held.
    written_and_held: list[tuple[int, int]] = []
    probe = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap)
    writes = 0

    @app.agent(topic)
    async def count(stream: Any) -> None:
        nonlocal writes
        async for event in stream.events():
            # Several keys per record, a deletion among them, as the router writes a message's
            # changed cases; no await in between, so nothing leaves the buffer on its own.
            for n in range(3):
                table[f"{event.value.decode()}-{n}"] = {"offset": event.message.offset}
            writes += 3
            if event.message.offset % 2:
                del table[f"{event.value.decode()}-0"]
                writes += 1
            await table.acknowledged()
            held = (await probe.end_offsets([changelog]))[changelog]
            written_and_held.append((writes, held))

    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    await producer.start()
    await probe.start()
    await app.start()
    try:
        for n in range(10):
            await producer.send_and_wait(name, f"record{n}".encode())
        deadline = asyncio.get_running_loop().time() + 60
        while len(written_and_held) < 10:
            assert asyncio.get_running_loop().time() < deadline, written_and_held
            await asyncio.sleep(0.05)
        assert all(held >= written for written, held in written_and_held), written_and_held
        assert written_and_held[-1] == (35, 35)
    finally:
        await app.stop()
        await probe.stop()
        await producer.stop()
