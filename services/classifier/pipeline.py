"""What the classifier does with a batch of records, apart from Kafka I/O.

``decode`` turns raw records into feedback events or dead letters; ``facts_of`` reads the facts
of a batch (the agent does it while the model runs in its thread); ``assemble`` joins the
model's predictions, extracted facts and customer history into ``FeedbackClassified`` events.
All are pure: the faust agent runs the model between them and does the I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from services.classifier import history
from services.classifier.extraction import extract_facts
from services.classifier.model import Prediction
from services.common.messages import (
    DeadLetter,
    EmbeddingSketch,
    Facts,
    FeedbackClassified,
    FeedbackReceived,
)
from services.common.sketch import sketch

SERVICE = "classifier"


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A record as read from ``feedback.received``."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class Decoded:
    """A batch split into events to classify, dead letters and repeats, with their records."""

    events: list[tuple[RawRecord, FeedbackReceived]] = field(default_factory=list)
    dead: list[tuple[RawRecord, DeadLetter]] = field(default_factory=list)
    duplicates: list[FeedbackReceived] = field(default_factory=list)


def dead_letter(record: RawRecord, *, reason: str, error_type: str, now: datetime) -> DeadLetter:
    """A dead letter carrying the original bytes and why they were refused."""
    return DeadLetter.for_record(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        reason=reason,
        error_type=error_type,
        service=SERVICE,
        now=now,
    )


def _validation_reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "value"
        parts.append(f"{where}: {err['msg']}")
    return "invalid FeedbackReceived: " + "; ".join(parts)


def decode(
    records: Sequence[RawRecord],
    *,
    already_seen: Callable[[FeedbackReceived], bool],
    now: datetime,
) -> Decoded:
    """Validate each record; repeats (seen before, or twice in this batch) are set aside."""
    decoded = Decoded()
    in_batch: set[str] = set()
    for record in records:
        if not record.value:
            letter = dead_letter(
                record, reason="empty record value", error_type="EmptyValue", now=now
            )
            decoded.dead.append((record, letter))
            continue
        try:
            event = FeedbackReceived.model_validate_json(record.value)
        except ValidationError as exc:
            letter = dead_letter(
                record, reason=_validation_reason(exc), error_type="ValidationError", now=now
            )
            decoded.dead.append((record, letter))
            continue
        event_id = str(event.event_id)
        if event_id in in_batch or already_seen(event):
            decoded.duplicates.append(event)
            continue
        in_batch.add(event_id)
        decoded.events.append((record, event))
    return decoded


def history_entry(
    event: FeedbackReceived, prediction: Prediction, *, now: datetime
) -> history.Entry:
    """What the customer's history keeps of a classified message."""
    return history.Entry(
        event_id=str(event.event_id),
        at=(event.occurred_at or event.received_at or now).isoformat(),
        sentiment=prediction.sentiment.label,
        category=prediction.category.label,
        difficult=prediction.difficult.label,
    )


def facts_of(events: Sequence[FeedbackReceived]) -> dict[str, Facts]:
    """The facts of each event whose text they can be read from, by event id; an event whose
    extraction fails is left out, so that it fails again, alone, when it is assembled."""
    found: dict[str, Facts] = {}
    for event in events:
        try:
            found[str(event.event_id)] = extract_facts(event.text)
        except Exception:  # noqa: S112 - assembling this event raises it again
            continue
    return found


def assemble(
    event: FeedbackReceived,
    prediction: Prediction,
    *,
    facts: Facts | None = None,
    past: list[history.Entry],
    model_version: str,
    window_days: int,
    repeat_threshold: int,
    now: datetime,
) -> FeedbackClassified:
    """The classified event: tags, facts (read from the text unless given) and the customer's
    history before this message."""
    return FeedbackClassified(
        event_id=event.event_id,
        feedback=event,
        sentiment=prediction.sentiment,
        sentiment_score=prediction.sentiment_score,
        category=prediction.category,
        difficult=prediction.difficult,
        needs_review=prediction.needs_review,
        review_reason=prediction.review_reason,
        facts=facts if facts is not None else extract_facts(event.text),
        history=history.summarize(
            past, now=now, window_days=window_days, repeat_threshold=repeat_threshold
        ),
        model_version=model_version,
        classified_at=now,
        embedding=(
            EmbeddingSketch(values=sketch(prediction.embedding))
            if prediction.embedding is not None
            else None
        ),
    )
