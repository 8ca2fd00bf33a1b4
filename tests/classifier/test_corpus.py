"""The project's labelled corpus is well formed and covers what public data does not."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from services.common.messages import Category, DifficultType, Sentiment

CORPUS = Path(__file__).parents[2] / "services" / "classifier" / "corpus"
KEYS = {"text", "label_sentiment", "label_category", "label_difficult", "channel", "source"}
CHANNELS = {"email", "chat", "social", "phone", "web", "survey"}


def _rows() -> list[dict[str, str]]:
    rows = []
    for path in sorted(CORPUS.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            row = json.loads(line)
            assert set(row) == KEYS, f"{path.name}:{number}"
            rows.append(row)
    return rows


def test_labels_are_valid_and_texts_unique() -> None:
    rows = _rows()
    assert len(rows) > 2000
    for row in rows:
        Sentiment(row["label_sentiment"])
        Category(row["label_category"])
        DifficultType(row["label_difficult"])
        assert row["channel"] in CHANNELS
        assert row["source"] == "triage-corpus"
        assert row["text"].strip()
    texts = Counter(" ".join(row["text"].lower().split()) for row in rows)
    assert texts.most_common(1)[0][1] == 1


def test_covers_the_types_and_categories_without_public_data() -> None:
    rows = _rows()
    difficult = Counter(row["label_difficult"] for row in rows)
    for kind in ("demanding", "stubborn", "know_it_all", "whiner", "chatterbox", "quiet"):
        assert difficult[kind] >= 150, kind
    category = Counter(row["label_category"] for row in rows)
    for kind in ("staff_conduct", "communication", "broken_promise", "suggestion"):
        assert category[kind] >= 120, kind
    assert set(Counter(row["channel"] for row in rows)) == CHANNELS
