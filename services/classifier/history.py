"""The customer's recent messages, as the classifier remembers them (pure functions).

A customer's history is a short list of entries, one per message, newest last, with the
message's event id and tags. Counts are computed from the list, so replaying a message (after a
rebalance or a restart) never counts it twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypedDict, TypeVar

from services.common.messages import Category, CustomerHistory, DifficultType, Sentiment

E = TypeVar("E", bound=StrEnum)
NOT_COMPLAINTS = frozenset({Category.PRAISE.value, Category.SUGGESTION.value})


class Entry(TypedDict):
    """One remembered message."""

    event_id: str
    at: str
    sentiment: str
    category: str
    difficult: str


def parse_entries(value: Any) -> list[Entry]:
    """Entries from a table value; anything malformed is dropped rather than trusted."""
    if not isinstance(value, list):
        return []
    entries: list[Entry] = []
    for item in value:
        if isinstance(item, dict) and all(
            isinstance(item.get(k), str) for k in Entry.__annotations__
        ):
            entries.append(
                Entry(
                    event_id=item["event_id"],
                    at=item["at"],
                    sentiment=item["sentiment"],
                    category=item["category"],
                    difficult=item["difficult"],
                )
            )
    return entries


def seen(entries: list[Entry], event_id: str) -> bool:
    """True when the message was already classified."""
    return any(entry["event_id"] == event_id for entry in entries)


def _within(entries: list[Entry], *, now: datetime, window_days: int) -> list[Entry]:
    since = now - timedelta(days=window_days)
    kept = []
    for entry in entries:
        try:
            at = datetime.fromisoformat(entry["at"])
        except ValueError:
            continue
        if at >= since:
            kept.append(entry)
    return kept


def summarize(
    entries: list[Entry], *, now: datetime, window_days: int, repeat_threshold: int
) -> CustomerHistory:
    """What travels with a new message: counts in the window and the last tags."""
    recent = _within(entries, now=now, window_days=window_days)
    complaints = sum(1 for e in recent if e["category"] not in NOT_COMPLAINTS)
    negative = sum(1 for e in recent if e["sentiment"] == Sentiment.NEGATIVE.value)
    last = recent[-1] if recent else None
    return CustomerHistory(
        window_days=window_days,
        recent_messages=len(recent),
        recent_complaints=complaints,
        recent_negative=negative,
        repeat_complainer=complaints >= repeat_threshold,
        last_seen_at=datetime.fromisoformat(last["at"]) if last else None,
        last_sentiment=_member(Sentiment, last["sentiment"]) if last else None,
        last_category=_member(Category, last["category"]) if last else None,
        last_difficult=_member(DifficultType, last["difficult"]) if last else None,
    )


def _member(kind: type[E], value: str) -> E | None:
    try:
        return kind(value)
    except ValueError:
        return None


def remember(
    entries: list[Entry], entry: Entry, *, now: datetime, window_days: int, max_entries: int
) -> list[Entry]:
    """The history with one more message (once), pruned to the window and the size bound."""
    if seen(entries, entry["event_id"]):
        return entries
    updated = [*_within(entries, now=now, window_days=window_days), entry]
    return updated[-max_entries:]
