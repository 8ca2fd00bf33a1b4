"""Supervisors' corrections as training data: the topic read to its end, the latest
correction of a message winning, and `triage corrections` / `triage train --corrections`."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from click.testing import CliRunner

from services.classifier.corrections import (
    SOURCE,
    as_examples,
    latest_per_message,
    merge,
    read_corrections,
)
from services.classifier.training import Example
from services.cli import main
from services.common.kafka import KafkaSettings, ensure_topics
from services.common.messages import Category, Channel, Correction, DifficultType, Sentiment
from services.common.topics import feedback_corrections
from tests.router.factories import T0

CORPUS = Path(__file__).parents[2] / "services" / "classifier" / "corpus"


def correction(
    text: str,
    *,
    case: uuid.UUID | None = None,
    event: uuid.UUID | None = None,
    minutes: int = 0,
    **labels: str,
) -> Correction:
    return Correction(
        correction_id=uuid.uuid4(),
        case_id=case or uuid.uuid4(),
        event_id=event or uuid.uuid4(),
        channel=Channel.EMAIL,
        text=text,
        label_sentiment=labels.get("sentiment"),
        label_category=labels.get("category"),
        label_difficult=labels.get("difficult"),
        predicted_sentiment="neutral",
        predicted_category="delay",
        predicted_difficult="none",
        corrected_by="kate",
        corrected_at=T0 + timedelta(minutes=minutes),
    )


def test_the_latest_correction_of_a_message_wins() -> None:
    case, event = uuid.uuid4(), uuid.uuid4()
    first = correction("Charged twice", case=case, event=event, minutes=1, category="delay")
    second = correction("Charged twice", case=case, event=event, minutes=2, category="billing")
    other = correction("Rude agent", minutes=0, difficult="angry")
    assert latest_per_message([second, other, first]) == [other, second]
    examples = as_examples([first, second, other])
    assert {(e.text, e.label_category, e.label_difficult) for e in examples} == {
        ("Charged twice", Category.BILLING, None),
        ("Rude agent", None, DifficultType.ANGRY),
    }
    assert all(e.source == SOURCE for e in examples)


def test_a_corrected_text_replaces_other_examples_and_keeps_their_other_labels() -> None:
    files = [
        Example(text="Charged  TWICE", label_category="delay", label_sentiment="negative"),
        Example(text="charged twice", label_category="delay"),
        Example(text="Lovely staff", label_category="praise"),
    ]
    corrected = as_examples([correction("Charged twice", category="billing")])
    merged = merge(files, corrected)
    assert [e.text for e in merged] == ["Lovely staff", "Charged twice"]
    fixed = merged[-1]
    assert fixed.label_category == Category.BILLING
    assert fixed.label_sentiment == Sentiment.NEGATIVE


async def publish(kafka: KafkaSettings, records: list[Correction]) -> None:
    await ensure_topics(kafka, [feedback_corrections])
    empty = await read_corrections(kafka, timeout_s=10)
    assert (empty.corrections, empty.unreadable) == ([], 0)
    producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all")
    await producer.start()
    try:
        topic = kafka.topic(feedback_corrections)
        for item in records:
            await producer.send_and_wait(topic, item.model_dump_json().encode(), key=b"k")
        await producer.send_and_wait(topic, b"{not a correction", key=b"k")
    finally:
        await producer.stop()


def test_corrections_are_read_from_the_topic_and_train_the_model(
    kafka: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case, event = uuid.uuid4(), uuid.uuid4()
    records = [
        correction("The courier never came", case=case, event=event, minutes=1, category="praise"),
        correction("The courier never came", case=case, event=event, minutes=2, category="delay"),
        correction("You people are useless!!!", minutes=3, difficult="angry", sentiment="negative"),
    ]
    # The CLI runs its own event loop, so this test drives the broker through asyncio.run.
    asyncio.run(publish(kafka, records))
    found = asyncio.run(read_corrections(kafka, timeout_s=10))
    assert [c.correction_id for c in found.corrections] == [r.correction_id for r in records]
    assert found.unreadable == 1

    monkeypatch.setenv("TRIAGE_KAFKA_BOOTSTRAP", kafka.bootstrap)
    monkeypatch.setenv("TRIAGE_KAFKA_TOPIC_PREFIX", kafka.topic_prefix)
    out = tmp_path / "corrections.jsonl"
    result = CliRunner().invoke(main, ["corrections", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable record" in result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(r["text"], r.get("label_category")) for r in rows} == {
        ("The courier never came", "delay"),
        ("You people are useless!!!", None),
    }

    lines: list[str] = []
    for path in sorted(CORPUS.glob("*.jsonl")):
        lines.extend(path.read_text().splitlines())
    random.Random(5).shuffle(lines)
    data = tmp_path / "tickets.jsonl"
    data.write_text("\n".join(lines[:300]) + "\n")
    model = tmp_path / "model"
    result = CliRunner().invoke(
        main,
        [
            *("train", "--data", str(data), "--corrections", "--out", str(model)),
            *("--max-steps", "2", "--batch-size", "8", "--max-tokens", "32", "--holdout", "0"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "2 corrected messages from the corrections topic" in result.output
    sources = json.loads((model / "metadata.json").read_text())["training_sources"]
    assert sources[SOURCE] == 2, "both corrected texts are trained on"


def test_an_unreachable_broker_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.common.broker import free_port

    monkeypatch.setenv("TRIAGE_KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port()}")
    result = CliRunner().invoke(main, ["corrections", "--out", "/dev/null"])
    assert result.exit_code == 1
    assert "cannot read the corrections" in result.output
    assert "Traceback" not in result.output
