"""What the trends keep of one classified message: its tags, time, a few words and its sketch.

``observe`` is the one place a ``FeedbackClassified`` is read; every other trends module works
on ``Observation``, so the domain logic is tested (and benchmarked) without messages or Kafka.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from services.common.messages import FeedbackClassified
from services.common.sketch import unit_vector

EXCERPT_CHARS = 140
MAX_TERMS = 40

_WORD = re.compile(r"[a-z0-9][a-z0-9'&-]{2,24}")
# Words too common in complaints to say what a cluster is about.
STOPWORDS = frozenset(
    [
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "and",
        "any",
        "are",
        "aren't",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "can",
        "can't",
        "cannot",
        "could",
        "couldn't",
        "did",
        "didn't",
        "does",
        "doesn't",
        "doing",
        "don't",
        "down",
        "during",
        "each",
        "even",
        "ever",
        "every",
        "few",
        "for",
        "from",
        "further",
        "get",
        "got",
        "had",
        "hadn't",
        "has",
        "hasn't",
        "have",
        "haven't",
        "having",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i'm",
        "i've",
        "into",
        "isn't",
        "it's",
        "its",
        "itself",
        "just",
        "let's",
        "like",
        "more",
        "most",
        "much",
        "must",
        "mustn't",
        "myself",
        "nor",
        "not",
        "now",
        "off",
        "once",
        "only",
        "other",
        "ought",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "shan't",
        "she",
        "should",
        "shouldn't",
        "some",
        "still",
        "such",
        "than",
        "that",
        "that's",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "there's",
        "these",
        "they",
        "they're",
        "this",
        "those",
        "through",
        "too",
        "under",
        "until",
        "very",
        "was",
        "wasn't",
        "were",
        "weren't",
        "what",
        "what's",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "won't",
        "would",
        "wouldn't",
        "you",
        "you're",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "one",
        "two",
        "three",
        "back",
        "again",
        "really",
        "please",
        "thanks",
        "thank",
        "hello",
        "dear",
        "since",
        "today",
        "yesterday",
        "time",
        "times",
        "day",
        "days",
        "week",
        "weeks",
        "said",
        "told",
        "tried",
        "trying",
        "want",
        "wanted",
        "need",
        "needed",
        "know",
        "make",
        "made",
        "going",
        "still",
        "yet",
        "already",
        "able",
        "way",
        "thing",
        "things",
        "lot",
        "would've",
        "i'd",
        "i'll",
    ]
)


@dataclass(frozen=True, slots=True)
class Observation:
    """One classified message as the trends see it."""

    event_id: str
    at: datetime
    category: str
    channel: str
    sentiment: str
    difficult: str
    excerpt: str
    terms: tuple[str, ...]
    vector: npt.NDArray[np.float32] | None
    model_version: str = ""


def terms_of(text: str) -> tuple[str, ...]:
    """The distinct content words of a text, in order, at most MAX_TERMS."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        word = word.strip("'&-")
        if _is_term(word):
            seen.setdefault(word, None)
            if len(seen) >= MAX_TERMS:
                break
    return tuple(seen)


def _is_term(word: str) -> bool:
    # Short numbers stay (error codes such as 503 say what failed); long ones are references.
    if word.isdigit():
        return 3 <= len(word) <= 4
    return len(word) >= 3 and word not in STOPWORDS


def excerpt_of(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The first words of a text on one line, cut at a word boundary."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"


def observe(message: FeedbackClassified) -> Observation:
    """The observation of a classified message; its time is when the platform received it."""
    feedback = message.feedback
    vector = unit_vector(message.embedding.values) if message.embedding is not None else None
    return Observation(
        event_id=str(message.event_id),
        at=feedback.received_at,
        category=message.category.label,
        channel=str(feedback.channel),
        sentiment=message.sentiment.label,
        difficult=message.difficult.label,
        excerpt=excerpt_of(feedback.text),
        terms=terms_of(feedback.text),
        vector=vector,
        model_version=message.model_version,
    )
