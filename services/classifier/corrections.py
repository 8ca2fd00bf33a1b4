"""Supervisors' corrections as training data: read ``feedback.corrections`` to its end.

The latest correction of a message wins, and a corrected text replaces every other example of
the same text, so the model learns what the people who handle the cases decided.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from services.classifier.training import Example, text_key
from services.common.errors import TriageError
from services.common.kafka import BrokerUnreachable, KafkaSettings, topic_reader
from services.common.messages import Correction
from services.common.topics import feedback_corrections

SOURCE = "agent-corrections"


class CorrectionsError(TriageError):
    """The corrections topic cannot be read."""


@dataclass(frozen=True)
class CorrectionsRead:
    """What the topic held: the readable corrections, oldest first, and how many were not."""

    corrections: list[Correction]
    unreadable: int


async def read_corrections(kafka: KafkaSettings, *, timeout_s: float = 30.0) -> CorrectionsRead:
    """Every correction on the topic up to its end offsets as of now."""
    topic = kafka.topic(feedback_corrections)
    corrections: list[Correction] = []
    unreadable = 0
    try:
        async with topic_reader(kafka, topic, timeout_s=timeout_s) as (consumer, partitions):
            if not partitions:
                return CorrectionsRead([], 0)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                if loop.time() > deadline:
                    raise CorrectionsError(f"reading {topic} took longer than {timeout_s:g} s")
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        try:
                            corrections.append(Correction.model_validate_json(record.value or b""))
                        except ValidationError:
                            unreadable += 1
    except BrokerUnreachable as exc:
        raise CorrectionsError(str(exc)) from exc
    corrections.sort(key=lambda c: c.corrected_at)
    return CorrectionsRead(corrections, unreadable)


def latest_per_message(corrections: Iterable[Correction]) -> list[Correction]:
    """The last correction of each message (a later relabelling replaces an earlier one)."""
    latest: dict[object, Correction] = {}
    for correction in sorted(corrections, key=lambda c: c.corrected_at):
        latest[(correction.case_id, correction.event_id)] = correction
    return list(latest.values())


def as_examples(corrections: Iterable[Correction]) -> list[Example]:
    """Training examples of the latest corrections; labels a correction leaves out stay unset."""
    return [
        Example(
            text=c.text,
            label_sentiment=c.label_sentiment,
            label_category=c.label_category,
            label_difficult=c.label_difficult,
            source=SOURCE,
        )
        for c in latest_per_message(corrections)
        if c.text.strip()
    ]


def merge(examples: Sequence[Example], corrected: Sequence[Example]) -> list[Example]:
    """The training set with corrections: a corrected text replaces every other example of
    the same text, whatever file it came from, keeping the labels the correction left out."""
    by_key = {text_key(example.text): example for example in corrected}
    kept: list[Example] = []
    for example in examples:
        key = text_key(example.text)
        correction = by_key.get(key)
        if correction is None:
            kept.append(example)
            continue
        by_key[key] = correction.model_copy(
            update={
                "label_sentiment": correction.label_sentiment or example.label_sentiment,
                "label_category": correction.label_category or example.label_category,
                "label_difficult": correction.label_difficult or example.label_difficult,
            }
        )
    return kept + list(by_key.values())
