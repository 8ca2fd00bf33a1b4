"""Tags a JSON Lines file offline (``triage classify``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from services.classifier.extraction import extract_facts
from services.classifier.model import TAGS, Prediction, TriageModel

KEPT_FIELDS = ("id", "channel", "text")


class InputLineError(ValueError):
    """An input line is not usable; the message starts with its line number."""


def parse_line(number: int, line: str) -> dict[str, Any]:
    """One input object: ``text`` required, ``id`` and ``channel`` optional."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputLineError(f"{number}: not JSON ({exc.msg})") from None
    if not isinstance(item, dict):
        raise InputLineError(f"{number}: expected a JSON object")
    text = item.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InputLineError(f"{number}: 'text' must be a non-empty string")
    for name in ("id", "channel"):
        if name in item and not isinstance(item[name], str | int):
            raise InputLineError(f"{number}: '{name}' must be a string")
    return {name: item[name] for name in KEPT_FIELDS if name in item}


def tagged_row(item: dict[str, Any], prediction: Prediction) -> dict[str, Any]:
    """The output object: the input's fields plus tags, probabilities, review flag and facts."""
    row = dict(item)
    for tag in TAGS:
        result = getattr(prediction, tag)
        row[tag] = result.label
        row[f"{tag}_probability"] = result.probability
        row[f"{tag}_runner_up"] = result.runner_up
        row[f"{tag}_runner_up_probability"] = result.runner_up_probability
    row["sentiment_score"] = prediction.sentiment_score
    row["needs_review"] = prediction.needs_review
    row["review_tags"] = [tag for tag in TAGS if getattr(prediction, tag).needs_review]
    row["review_reason"] = prediction.review_reason
    row["facts"] = extract_facts(item["text"]).model_dump(mode="json")
    return row


def classify_lines(
    model: TriageModel, lines: Iterable[str], *, batch_size: int = 32
) -> Iterator[dict[str, Any]]:
    """Tag every non-blank line, in order, a batch at a time."""
    batch: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        batch.append(parse_line(number, line))
        if len(batch) >= batch_size:
            yield from _tag_batch(model, batch, batch_size)
            batch = []
    if batch:
        yield from _tag_batch(model, batch, batch_size)


def _tag_batch(
    model: TriageModel, batch: list[dict[str, Any]], batch_size: int
) -> Iterator[dict[str, Any]]:
    predictions = model.predict([item["text"] for item in batch], batch_size=batch_size)
    for item, prediction in zip(batch, predictions, strict=True):
        yield tagged_row(item, prediction)
