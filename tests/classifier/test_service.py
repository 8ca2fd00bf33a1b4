"""The classifier worker on the real broker: events in, tagged events out, poison to the DLQ,
repeats tagged once, and a killed worker resumes without losing or repeating anything."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from services.common.broker import EmbeddedBroker
from services.common.kafka import KafkaSettings, ensure_topics
from services.common.messages import Channel, Customer, FeedbackReceived, Source, event_id_for
from services.common.topics import (
    ALL_TOPICS,
    feedback_classified,
    feedback_received,
    feedback_received_dlq,
)
from tests.support.kafka import read_records
from tests.support.process import ServiceProcess

ROOT = Path(__file__).parents[2]


def feedback(n: int, text: str, customer: str = "cust-1") -> FeedbackReceived:
    return FeedbackReceived(
        event_id=event_id_for("test", f"ev-{n}"),
        source=Source(platform="test", event_id=f"ev-{n}"),
        channel=Channel.EMAIL,
        customer=Customer(id=customer),
        text=text,
        received_at=datetime.now(UTC),
    )


class Worker(ServiceProcess):
    """A `triage classifier` process on the test broker."""

    def __init__(self, kafka: KafkaSettings, tmp: Path, app_id: str) -> None:
        env = {
            **os.environ,
            "TRIAGE_KAFKA_BOOTSTRAP": kafka.bootstrap,
            "TRIAGE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
            "TRIAGE_CLASSIFIER_APP_ID": app_id,
            "TRIAGE_CLASSIFIER_DATA_DIR": str(tmp / "data"),
            "TRIAGE_CLASSIFIER_BATCH_WAIT_S": "0.1",
        }
        super().__init__("classifier", env, tmp)


pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[list[Worker]]:
    workers: list[Worker] = []
    yield workers
    for worker in workers:
        worker.kill()


async def produce(kafka: KafkaSettings, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def _record(event: FeedbackReceived) -> tuple[bytes, bytes]:
    return event.customer.id.encode(), event.model_dump_json().encode()


async def test_tags_events_dead_letters_poison_and_skips_repeats(
    broker: EmbeddedBroker, kafka: KafkaSettings, tmp_path: Path, worker_factory: list[Worker]
) -> None:
    await ensure_topics(kafka, ALL_TOPICS)
    worker = Worker(kafka, tmp_path, app_id=f"clf-{uuid.uuid4().hex[:8]}")
    worker_factory.append(worker)
    worker.start()
    worker.wait_ready()

    angry = feedback(
        1, "You charged me TWICE for order #A-55812, £49.99 each!!! Fix it NOW or I cancel."
    )
    praise = feedback(
        2, "Thank you so much, Maria was brilliant and sorted my broadband in minutes.", "cust-2"
    )
    second = feedback(3, "Still no refund for order #A-55812. This is my third email about it.")
    source = kafka.topic(feedback_received)
    await produce(kafka, source, [_record(angry), _record(praise)])
    await produce(kafka, source, [(b"cust-9", b"{not json"), (b"cust-9", b'{"schema_version": 1}')])
    await produce(kafka, source, [_record(angry), _record(second)])  # a repeat, then a new one

    out = await read_records(kafka, kafka.topic(feedback_classified), expected=3, timeout_s=60)
    events = {r.json()["event_id"]: r.json() for r in out}
    assert len(out) == 3, "the repeated event must be tagged once"
    assert set(events) == {str(angry.event_id), str(praise.event_id), str(second.event_id)}
    first = events[str(angry.event_id)]
    assert first["feedback"]["text"] == angry.text
    assert first["sentiment"]["label"] == "negative"
    assert first["category"]["label"] == "billing"
    assert {"label", "probability", "runner_up", "runner_up_probability", "needs_review"} <= set(
        first["category"]
    )
    assert first["facts"]["amounts"][0] == {"amount": 49.99, "currency": "GBP", "text": "£49.99"}
    assert first["facts"]["references"][0]["value"] == "A-55812"
    assert first["facts"]["language"] == "en"
    assert first["history"]["recent_messages"] == 0
    assert events[str(praise.event_id)]["category"]["label"] == "praise"
    assert events[str(praise.event_id)]["sentiment"]["label"] == "positive"
    later = events[str(second.event_id)]["history"]
    assert later["recent_messages"] == 1
    assert later["last_category"] == "billing"
    assert all(r.key == r.json()["feedback"]["customer"]["id"].encode() for r in out)

    dead = await read_records(kafka, kafka.topic(feedback_received_dlq), expected=2, timeout_s=30)
    letters = [r.json() for r in dead]
    assert {base64.b64decode(d["value"]) for d in letters} == {
        b"{not json",
        b'{"schema_version": 1}',
    }
    assert all(d["reason"].startswith("invalid FeedbackReceived") for d in letters)
    assert all(d["source_topic"] == source for d in letters)

    metrics = worker.metrics()
    assert "triage_classifier_classified_total 3.0" in metrics
    assert "triage_classifier_duplicates_total 1.0" in metrics
    assert 'triage_classifier_dead_letters_total{error_type="ValidationError"} 2.0' in metrics
    assert 'triage_classifier_messages_total{label="billing",tag="category"}' in metrics
    assert "triage_classifier_latency_seconds_count 3.0" in metrics
    assert "triage_classifier_model_info{" in metrics


@pytest.mark.timeout(300)
async def test_killed_worker_resumes_without_loss_or_repeat(
    broker: EmbeddedBroker, kafka: KafkaSettings, tmp_path: Path, worker_factory: list[Worker]
) -> None:
    await ensure_topics(kafka, ALL_TOPICS)
    app_id = f"clf-{uuid.uuid4().hex[:8]}"
    first = Worker(kafka, tmp_path, app_id)
    worker_factory.append(first)
    first.start()
    first.wait_ready()
    source = kafka.topic(feedback_received)
    before = [feedback(n, f"My parcel {n} is late again", f"cust-{n % 3}") for n in range(12)]
    await produce(kafka, source, [_record(e) for e in before])
    await read_records(
        kafka, kafka.topic(feedback_classified), expected=12, timeout_s=60, settle_s=0
    )
    await asyncio.sleep(4)  # past a commit interval, as in normal running
    first.kill()

    after = [feedback(n, f"Charged twice for order {n}", f"cust-{n % 3}") for n in range(12, 20)]
    await produce(kafka, source, [_record(e) for e in after])
    second = Worker(kafka, tmp_path, app_id)
    worker_factory.append(second)
    second.start()
    second.wait_ready()
    out = await read_records(
        kafka, kafka.topic(feedback_classified), expected=20, timeout_s=90, settle_s=3
    )
    ids = [r.json()["event_id"] for r in out]
    assert sorted(ids) == sorted(str(e.event_id) for e in before + after)
    # History survived the restart: each customer's messages are counted once.
    final = {r.json()["event_id"]: r.json() for r in out}
    last = final[str(after[-1].event_id)]["history"]
    assert last["recent_messages"] == len(
        [e for e in before + after[:-1] if e.customer.id == after[-1].customer.id]
    )
    second.stop()
    assert json.loads(json.dumps(last))
