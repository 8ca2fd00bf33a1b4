"""Poison records on the real broker: every one reaches its dead-letter topic with the reason and
its original bytes, and the stream goes on to the valid record after them."""

from __future__ import annotations

import base64
import random
import re
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from services.common.broker import EmbeddedBroker
from services.common.kafka import KafkaSettings, ensure_topics
from services.common.messages import (
    DEAD_LETTER_KEY_BYTES,
    DEAD_LETTER_VALUE_BYTES,
    Channel,
    Customer,
    FeedbackClassified,
    FeedbackReceived,
    Source,
    event_id_for,
)
from services.common.topics import (
    ALL_TOPICS,
    TopicSpec,
    feedback_classified,
    feedback_classified_dlq,
    feedback_received,
    feedback_received_dlq,
    router_inbox,
    router_inbox_dlq,
)
from services.router.app import INBOX
from tests.hostile.conftest import SUPERVISOR_TOKEN, service_env
from tests.hostile.strategies import nested
from tests.router import factories
from tests.support.kafka import read_records
from tests.support.process import ServiceProcess

pytestmark = pytest.mark.timeout(300)
# Kafka's default largest record is 1 MB; a record close to it is still a record the workers
# must dead-letter (its dead letter carries the value in base64, a third larger).
HUGE = 900_000
EDGE = b'"received_at":"0001-01-01T00:00:00+05:00"'


FEEDBACK = FeedbackReceived(
    event_id=event_id_for("test", "after-poison"),
    source=Source(platform="test", event_id="after-poison"),
    channel=Channel.EMAIL,
    customer=Customer(id="c-valid"),
    text="My order arrived broken and I want a refund.",
    received_at=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
)
CLASSIFIED = factories.feedback("Parcel late again.", customer="c-classified").feedback
INBOXED = factories.feedback("Still waiting for my refund.", customer="c-inbox")


def poison(valid: bytes) -> list[tuple[str, bytes | None, bytes]]:
    """(what, key, value) of records no decoder may accept, derived from a valid value."""
    rng = random.Random(20261123)
    return [
        ("random bytes", b"k-bytes", rng.randbytes(300)),
        ("invalid utf-8", b"k-utf8", b'{"text": "\xff\xfe"}'),
        ("truncated json", b"k-trunc", valid[: len(valid) // 2]),
        ("json of the wrong shape", b"k-shape", b'{"schema_version": 1, "items": [1, 2]}'),
        ("a json list", b"k-list", b"[" + valid + b"]"),
        ("a wrong field", b"k-field", valid.replace(b'"schema_version":1', b'"schema_version":9')),
        ("huge", b"k-huge", b'{"text": "' + b"x" * HUGE + b'"}'),
        ("a huge key", b"k-key" + b"k" * 400_000, b'{"text": "' + b"y" * 480_000 + b'"}'),
        ("deeply nested", b"k-nested", nested(10_000)),
        ("empty", None, b""),
        ("a time out of range", b"k-time", re.sub(rb'"received_at":"[^"]*"', EDGE, valid, count=1)),
    ]  # fmt: skip


async def produce(
    kafka: KafkaSettings, topic: str, records: list[tuple[bytes | None, bytes]]
) -> None:
    producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all", max_request_size=2_000_000)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def check_dead_letters(
    kafka: KafkaSettings,
    spec: TopicSpec,
    dlq: TopicSpec,
    sent: list[tuple[str, bytes | None, bytes]],
) -> None:
    """One dead letter per poison record: its topic, key, reason, and the value it carried."""
    letters = await read_records(kafka, kafka.topic(dlq), expected=len(sent), timeout_s=90)
    by_key = {letter.json()["key"]: letter.json() for letter in letters}
    assert len(letters) == len(sent), [letter.json()["reason"][:80] for letter in letters]
    for what, key, value in sent:
        carried_key = key[:DEAD_LETTER_KEY_BYTES] if key is not None else None
        letter = by_key[base64.b64encode(carried_key).decode() if carried_key is not None else None]
        assert letter["key_truncated"] == (key is not None and len(key) > DEAD_LETTER_KEY_BYTES)
        assert letter["source_topic"] == kafka.topic(spec), what
        assert letter["reason"], what
        assert letter["error_type"], what
        carried = base64.b64decode(letter["value"])
        assert letter["value_bytes"] == len(value), what
        assert letter["value_truncated"] == (len(value) > DEAD_LETTER_VALUE_BYTES), what
        assert carried == value[:DEAD_LETTER_VALUE_BYTES], what


class Worker(ServiceProcess):
    """A `triage classifier` process."""

    def __init__(self, kafka: KafkaSettings, tmp: Path) -> None:
        env = service_env(
            kafka,
            TRIAGE_CLASSIFIER_APP_ID=f"hc-{uuid.uuid4().hex[:8]}",
            TRIAGE_CLASSIFIER_DATA_DIR=str(tmp / "classifier-data"),
            TRIAGE_CLASSIFIER_BATCH_WAIT_S="0.1",
        )
        super().__init__("classifier", env, tmp)


@pytest.fixture
async def classifier(
    broker: EmbeddedBroker, kafka: KafkaSettings, tmp_path: Path
) -> AsyncIterator[Worker]:
    await ensure_topics(kafka, ALL_TOPICS)
    worker = Worker(kafka, tmp_path)
    worker.start()
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.kill()


async def test_classifier_dead_letters_poison_and_goes_on(
    kafka: KafkaSettings, classifier: Worker
) -> None:
    valid = FEEDBACK
    payload = valid.model_dump_json().encode()
    sent = poison(payload)
    source = kafka.topic(feedback_received)
    await produce(kafka, source, [(key, value) for _, key, value in sent])
    await produce(kafka, source, [(b"c-valid", payload)])

    out = await read_records(kafka, kafka.topic(feedback_classified), expected=1, timeout_s=90)
    assert [r.json()["event_id"] for r in out] == [str(valid.event_id)]
    await check_dead_letters(kafka, feedback_received, feedback_received_dlq, sent)
    metrics = classifier.metrics()
    assert "triage_classifier_dead_letters_total" in metrics


async def test_router_dead_letters_poison_on_both_inputs_and_goes_on(
    broker: EmbeddedBroker, kafka: KafkaSettings, tmp_path: Path
) -> None:
    await ensure_topics(kafka, ALL_TOPICS)
    router = ServiceProcess(
        "router",
        service_env(
            kafka,
            TRIAGE_ROUTER_APP_ID=f"hp-{uuid.uuid4().hex[:8]}",
            TRIAGE_ROUTER_DATA_DIR=str(tmp_path / "router-data"),
        ),
        tmp_path,
    )
    router.start()
    try:
        router.wait_ready()
        classified_sent = poison(CLASSIFIED.model_dump_json().encode())
        inbox_sent = [
            *poison(INBOXED.model_dump_json().encode()),
            ("a command without an actor", b"k-command", b'{"kind": "command"}'),
            ("an unknown kind", b"k-kind", b'{"kind": "reboot", "at": "2026-11-23T10:00:00Z"}'),
        ]
        await produce(
            kafka,
            kafka.topic(feedback_classified),
            [(key, value) for _, key, value in classified_sent],
        )
        await produce(kafka, kafka.topic(router_inbox), [(k, v) for _, k, v in inbox_sent])
        await produce(
            kafka,
            kafka.topic(feedback_classified),
            [(b"c-classified", CLASSIFIED.model_dump_json().encode())],
        )
        await produce(
            kafka, kafka.topic(router_inbox), [(b"floor", INBOXED.model_dump_json().encode())]
        )

        await check_dead_letters(
            kafka, feedback_classified, feedback_classified_dlq, classified_sent
        )
        await check_dead_letters(kafka, router_inbox, router_inbox_dlq, inbox_sent)
        async with httpx.AsyncClient(timeout=10) as http:
            cases = await http.get(
                f"{router.base}/v1/cases",
                headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"},
            )
        assert cases.status_code == 200
        assert cases.json()["next_cursor"] is None
        customers = sorted(case["customer_id"] for case in cases.json()["items"])
        assert customers == ["c-classified", "c-inbox"]
    finally:
        router.kill()


@pytest.mark.parametrize(
    ("payload", "decode"),
    [
        (FEEDBACK.model_dump_json().encode(), FeedbackReceived.model_validate_json),
        (CLASSIFIED.model_dump_json().encode(), FeedbackClassified.model_validate_json),
        (INBOXED.model_dump_json().encode(), INBOX.validate_json),
    ],
    ids=["feedback.received", "feedback.classified", "router.inbox"],
)
def test_every_poison_record_is_refused_by_its_decoder(
    payload: bytes, decode: Callable[[bytes], object]
) -> None:
    decode(payload)
    for what, _, value in poison(payload):
        assert value != payload, what
        with pytest.raises(ValidationError):
            decode(value)
