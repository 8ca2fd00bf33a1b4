"""The classifier's pure batch steps: decoding records, reading facts, assembling events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.classifier import pipeline
from services.classifier.extraction import extract_facts
from services.classifier.model import Prediction
from services.common.messages import (
    Channel,
    Customer,
    Facts,
    FeedbackClassified,
    FeedbackReceived,
    Source,
    Tag,
    event_id_for,
)

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def event(n: int, text: str) -> FeedbackReceived:
    return FeedbackReceived(
        event_id=event_id_for("test", str(n)),
        source=Source(platform="test", event_id=str(n)),
        channel=Channel.EMAIL,
        customer=Customer(id=f"cust-{n}"),
        text=text,
        received_at=NOW,
    )


def record(offset: int, value: bytes | None) -> pipeline.RawRecord:
    return pipeline.RawRecord(
        topic="feedback.received", partition=0, offset=offset, key=b"k", value=value
    )


PREDICTION = Prediction(
    sentiment=Tag(label="negative", probability=0.9),
    category=Tag(label="billing", probability=0.8, runner_up="delay", runner_up_probability=0.1),
    difficult=Tag(label="none", probability=0.7),
    sentiment_score=-0.8,
)


def assemble(message: FeedbackReceived, facts: Facts | None = None) -> FeedbackClassified:
    return pipeline.assemble(
        message,
        PREDICTION,
        facts=facts,
        past=[],
        model_version="v",
        window_days=30,
        repeat_threshold=3,
        now=NOW,
    )


def test_decode_sets_aside_dead_letters_and_repeats() -> None:
    first = event(1, "You took £40.00 twice for order AB-12345.")
    seen = event(2, "Still waiting for my refund.")
    records = [
        record(0, first.model_dump_json().encode()),
        record(1, b""),
        record(2, b'{"event_type": "FeedbackReceived"}'),
        record(3, first.model_dump_json().encode()),
        record(4, seen.model_dump_json().encode()),
    ]
    decoded = pipeline.decode(records, already_seen=lambda e: e.event_id == seen.event_id, now=NOW)
    assert [(r.offset, e.event_id) for r, e in decoded.events] == [(0, first.event_id)]
    assert [(r.offset, letter.error_type) for r, letter in decoded.dead] == [
        (1, "EmptyValue"),
        (2, "ValidationError"),
    ]
    assert "event_id: Field required" in decoded.dead[1][1].reason
    assert [e.event_id for e in decoded.duplicates] == [first.event_id, seen.event_id]


def test_facts_of_a_batch_are_those_of_each_text() -> None:
    events = [event(1, "Refund the £62.40 for order AB-12345 please."), event(2, "Thanks!")]
    facts = pipeline.facts_of(events)
    assert facts == {str(e.event_id): extract_facts(e.text) for e in events}
    assert facts[str(events[0].event_id)].amounts[0].amount == pytest.approx(62.40)


def test_an_event_whose_facts_fail_is_left_out_and_fails_again_when_assembled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good, bad = event(1, "Order AB-12345 is late."), event(2, "this text breaks extraction")
    real = extract_facts

    def extract(text: str) -> Facts:
        if text == bad.text:
            raise ValueError("extraction failed")
        return real(text)

    monkeypatch.setattr(pipeline, "extract_facts", extract)
    facts = pipeline.facts_of([good, bad])
    assert list(facts) == [str(good.event_id)]
    with pytest.raises(ValueError, match="extraction failed"):
        assemble(bad)


def test_assemble_uses_the_facts_given_or_reads_them_from_the_text() -> None:
    message = event(1, "You charged me $19.99 twice on booking REF-778812.")
    given = Facts(language="de", language_confidence=0.5)
    with_given, read = assemble(message, given), assemble(message)
    assert with_given.facts == given
    assert read.facts == extract_facts(message.text)
    assert read.category.label == "billing"
    assert read.model_version == "v"
