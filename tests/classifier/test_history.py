"""Customer history: counts from remembered messages, idempotent under replays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.classifier import history

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _entry(
    n: int, days_ago: float, *, category: str = "billing", sentiment: str = "negative"
) -> history.Entry:
    return history.Entry(
        event_id=f"e{n}",
        at=(NOW - timedelta(days=days_ago)).isoformat(),
        sentiment=sentiment,
        category=category,
        difficult="none",
    )


def test_summary_counts_the_window_only() -> None:
    entries = [
        _entry(1, 40),
        _entry(2, 10),
        _entry(3, 5, category="praise", sentiment="positive"),
        _entry(4, 1, category="delay", sentiment="neutral"),
    ]
    summary = history.summarize(entries, now=NOW, window_days=30, repeat_threshold=2)
    assert summary.recent_messages == 3
    assert summary.recent_complaints == 2
    assert summary.recent_negative == 1
    assert summary.repeat_complainer
    assert summary.last_category is not None
    assert summary.last_category.value == "delay"
    assert summary.last_seen_at == NOW - timedelta(days=1)


def test_new_customer() -> None:
    summary = history.summarize([], now=NOW, window_days=30, repeat_threshold=2)
    assert (summary.recent_messages, summary.repeat_complainer, summary.last_sentiment) == (
        0,
        False,
        None,
    )


def test_remember_is_idempotent_pruned_and_bounded() -> None:
    entries: list[history.Entry] = []
    for n in range(10):
        entries = history.remember(entries, _entry(n, 0), now=NOW, window_days=30, max_entries=5)
    assert [e["event_id"] for e in entries] == ["e5", "e6", "e7", "e8", "e9"]
    again = history.remember(entries, _entry(9, 0), now=NOW, window_days=30, max_entries=5)
    assert again == entries
    old = history.remember([_entry(1, 90)], _entry(2, 0), now=NOW, window_days=30, max_entries=5)
    assert [e["event_id"] for e in old] == ["e2"]


def test_malformed_table_values_are_ignored() -> None:
    assert history.parse_entries(None) == []
    assert history.parse_entries({"a": 1}) == []
    good = dict(_entry(1, 0))
    assert history.parse_entries([good, {"event_id": 5}, "x"]) == [good]
    weird = {**good, "category": "unknown-label", "at": "not a date"}
    summary = history.summarize(
        history.parse_entries([weird, good]), now=NOW, window_days=30, repeat_threshold=5
    )
    assert summary.recent_messages == 1
