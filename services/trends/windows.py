"""Volumes over time: counts of messages by category, channel, sentiment and difficult type in
5-minute buckets for the last 24 hours and hourly buckets for the last 7 days.

Counts are kept per (category, channel, sentiment, difficult type), so any filter and any
breakdown a chart needs is a sum over the bucket's few dozen keys. Repeats of an event (a
classifier redelivery, a replay) are dropped by ``RecentIds`` before anything is counted: the
counts are never blind increments.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from services.trends.observation import Observation


class Granularity(StrEnum):
    """The width of a bucket; each has its own span of history."""

    FIVE_MINUTES = "5m"
    HOUR = "1h"


WIDTH = {Granularity.FIVE_MINUTES: timedelta(minutes=5), Granularity.HOUR: timedelta(hours=1)}
SPAN = {Granularity.FIVE_MINUTES: timedelta(hours=24), Granularity.HOUR: timedelta(days=7)}

#: (category, channel, sentiment, difficult type)
Key = tuple[str, str, str, str]
DIMENSIONS = ("category", "channel", "sentiment", "difficult")


def bucket_start(at: datetime, width: timedelta) -> datetime:
    """The start of the bucket of this width that holds ``at`` (buckets align to the epoch)."""
    seconds = int(width.total_seconds())
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


def key_of(observation: Observation) -> Key:
    """The counting key of an observation."""
    return (
        observation.category,
        observation.channel,
        observation.sentiment,
        observation.difficult,
    )


class RecentIds:
    """Event ids seen in the last ``span``, by hour, so repeats are dropped with bounded memory."""

    def __init__(self, span: timedelta = SPAN[Granularity.HOUR]) -> None:
        self.span = span
        self._by_hour: dict[datetime, set[str]] = {}
        self._horizon: datetime | None = None

    def add(self, event_id: str, at: datetime) -> bool:
        """True the first time an event id is seen (and it is not older than the span)."""
        if self._horizon is not None and at < self._horizon:
            return False
        if any(event_id in ids for ids in self._by_hour.values()):
            return False
        self._by_hour.setdefault(bucket_start(at, WIDTH[Granularity.HOUR]), set()).add(event_id)
        return True

    def prune(self, now: datetime) -> None:
        """Forget the ids of hours that left the span."""
        self._horizon = bucket_start(now - self.span, WIDTH[Granularity.HOUR])
        for hour in [h for h in self._by_hour if h < self._horizon]:
            del self._by_hour[hour]

    def __len__(self) -> int:
        return sum(len(ids) for ids in self._by_hour.values())


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bucket of a series, broken down by each dimension (only what a chart draws)."""

    start: datetime
    total: int
    category: dict[str, int] = field(default_factory=dict)
    channel: dict[str, int] = field(default_factory=dict)
    sentiment: dict[str, int] = field(default_factory=dict)
    difficult: dict[str, int] = field(default_factory=dict)


def summarise(start: datetime, counts: Counter[Key], admit: Callable[[Key], bool]) -> Bucket:
    """A bucket's admitted counts, totalled and broken down by dimension."""
    breakdown: list[Counter[str]] = [Counter() for _ in DIMENSIONS]
    total = 0
    for key, count in counts.items():
        if count <= 0 or not admit(key):
            continue
        total += count
        for dimension, value in zip(breakdown, key, strict=True):
            dimension[value] += count
    category, channel, sentiment, difficult = (dict(sorted(c.items())) for c in breakdown)
    return Bucket(start, total, category, channel, sentiment, difficult)


class Volumes:
    """Bucketed counts at every granularity, pruned to each one's span."""

    def __init__(self) -> None:
        self._counts: dict[Granularity, dict[datetime, Counter[Key]]] = {g: {} for g in Granularity}

    def add(self, observation: Observation) -> None:
        """Count an observation (the caller has dropped repeats)."""
        key = key_of(observation)
        for granularity, width in WIDTH.items():
            start = bucket_start(observation.at, width)
            self._counts[granularity].setdefault(start, Counter())[key] += 1

    def prune(self, now: datetime) -> None:
        """Drop the buckets that ended before their granularity's span."""
        for granularity, buckets in self._counts.items():
            horizon = now - SPAN[granularity]
            for start in [s for s in buckets if s + WIDTH[granularity] <= horizon]:
                del buckets[start]

    def buckets(
        self,
        granularity: Granularity,
        *,
        since: datetime,
        until: datetime,
        admit: Callable[[Key], bool] = lambda key: True,
    ) -> list[Bucket]:
        """Every bucket from the one holding ``since`` to the one holding ``until``, empty ones
        included (a chart needs the gaps), oldest first."""
        width = WIDTH[granularity]
        stored = self._counts[granularity]
        out = []
        for start in _starts(bucket_start(since, width), until, width):
            out.append(summarise(start, stored.get(start, Counter()), admit))
        return out


def _starts(first: datetime, until: datetime, width: timedelta) -> Iterator[datetime]:
    start = first
    while start <= until:
        yield start
        start += width


def totals(buckets: list[Bucket]) -> Bucket:
    """The sum of several buckets (start: the first one's), for the mix over a period."""
    if not buckets:
        return Bucket(datetime.fromtimestamp(0, tz=UTC), 0)
    sums: list[Counter[str]] = [Counter() for _ in DIMENSIONS]
    for bucket in buckets:
        for total, part in zip(
            sums, (bucket.category, bucket.channel, bucket.sentiment, bucket.difficult), strict=True
        ):
            total.update(part)
    category, channel, sentiment, difficult = (dict(sorted(c.items())) for c in sums)
    return Bucket(
        buckets[0].start,
        sum(b.total for b in buckets),
        category,
        channel,
        sentiment,
        difficult,
    )


class MinuteCounts:
    """Counts per minute over the last ``span_minutes`` minutes, in a ring: adding and summing
    a range cost the same however busy the series is."""

    __slots__ = ("_counts", "_last", "span")

    def __init__(self, span_minutes: int) -> None:
        self.span = span_minutes
        self._counts = [0] * span_minutes
        self._last: int | None = None  # the newest minute the ring holds

    @staticmethod
    def minute_of(at: datetime) -> int:
        """Minutes since the epoch."""
        return int(at.timestamp()) // 60

    def _advance(self, minute: int) -> None:
        if self._last is None:
            self._last = minute
            return
        if minute <= self._last:
            return
        steps = min(minute - self._last, self.span)
        for offset in range(1, steps + 1):
            self._counts[(self._last + offset) % self.span] = 0
        self._last = minute

    def add(self, at: datetime, count: int = 1) -> None:
        """Count ``count`` events at ``at``; ones older than the ring reaches are dropped."""
        minute = self.minute_of(at)
        self._advance(minute)
        assert self._last is not None
        if minute > self._last - self.span:
            self._counts[minute % self.span] += count

    def between(self, start: datetime, end: datetime) -> int:
        """Events in the minutes from the one holding ``start`` up to, not including, the one
        holding ``end`` (only those the ring still holds)."""
        if self._last is None:
            return 0
        first = max(self.minute_of(start), self._last - self.span + 1)
        stop = min(self.minute_of(end), self._last + 1)
        return sum(self._counts[m % self.span] for m in range(first, stop))

    def absorb(self, other: MinuteCounts) -> None:
        """Add another ring's counts (of the same span) to this one's."""
        if other._last is None:
            return
        self._advance(other._last)
        assert self._last is not None
        for minute in range(other._last - other.span + 1, other._last + 1):
            count = other._counts[minute % other.span]
            if count and minute > self._last - self.span:
                self._counts[minute % self.span] += count

    def empty(self) -> bool:
        """Whether nothing is counted any more."""
        return not any(self._counts)
