"""Surges: a category on a channel suddenly getting many more messages than it usually does.

Each (category, channel) series is compared with its own baseline. The count of the last
``window`` minutes is set against the rate the series usually has at this moment, the larger
of two estimates:

* recent: its rate over the hours just before the window (follows today's level);
* seasonal: the median, over the previous days, of its rate in the two hours around the same
  time of day (follows the daily cycle; the median ignores one bad day).

A surge starts when the count is at once large (at least ``min_count`` messages and
``min_ratio`` times the expected count) and unlikely (its Poisson upper-tail probability, with
the expectation inflated by ``overdispersion`` because complaint volumes vary more than a
Poisson process, is under ``max_p``). The minimum count keeps quiet categories from alerting
on three messages; the probability keeps busy ones from alerting on noise. A surge ends once
the count falls back under half of both limits; only then can the series raise a new one.
"""

from __future__ import annotations

import math
import statistics
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from services.trends.observation import Observation
from services.trends.windows import MinuteCounts, bucket_start

SURGE_ID_NAMESPACE = uuid.UUID("0b7d8c4e-9a51-4f4b-8c7e-53a1d2f0c6b9")
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)

Series = tuple[str, str]  # (category, channel)
#: The channel of the series that sums a category over every channel.
ALL_CHANNELS = "all"


@dataclass(frozen=True, slots=True)
class SurgeRules:
    """When a rise is a surge."""

    window: timedelta = timedelta(minutes=10)
    min_count: int = 6
    min_ratio: float = 3.0
    max_p: float = 1e-5
    overdispersion: float = 1.5
    recent: timedelta = timedelta(hours=3)
    seasonal_days: int = 7
    #: The lowest usual rate assumed for any series: a series that is almost always silent is
    #: still expected to get a message now and then.
    floor_per_hour: float = 1.0
    #: No series is judged before the detector has seen this much history.
    warmup: timedelta = timedelta(hours=1)
    #: Also judge each category over all channels (channel "all"): an incident that reaches
    #: customers everywhere spreads its messages thinly over the channels.
    across_channels: bool = True


@dataclass(frozen=True, slots=True)
class Baseline:
    """What a series usually gets in one window, and which estimate said so."""

    expected: float
    source: str  # "recent", "seasonal" or "floor"


@dataclass(frozen=True, slots=True)
class Surge:
    """A surge of one series; ``ended_at`` is set once it is over."""

    surge_id: str
    category: str
    channel: str
    window_start: datetime
    detected_at: datetime
    count: int
    expected: float
    p_value: float
    baseline: str
    peak_count: int
    ended_at: datetime | None = None

    @property
    def ratio(self) -> float:
        """How many times the expected count the window held when the surge was raised."""
        return self.count / self.expected if self.expected > 0 else math.inf


def poisson_tail(count: int, mean: float) -> float:
    """P(X >= count) for X ~ Poisson(mean), summed from ``count`` up so that the tiny
    probabilities a surge is judged by keep their precision."""
    if count <= 0:
        return 1.0
    if mean <= 0:
        return 0.0
    log_mean = math.log(mean)
    total = 0.0
    k = count
    while True:
        term = math.exp(-mean + k * log_mean - math.lgamma(k + 1))
        total += term
        k += 1
        if term < total * 1e-12 or k > count + 10_000:
            return min(1.0, total)


def surge_id(category: str, channel: str, window_start: datetime) -> str:
    """The same surge, seen by two replicas or after a restart, gets the same id."""
    key = f"{category}\x00{channel}\x00{window_start.isoformat()}"
    return str(uuid.uuid5(SURGE_ID_NAMESPACE, key))


@dataclass
class _SeriesState:
    minutes: MinuteCounts
    hours: dict[datetime, int] = field(default_factory=dict)
    active: Surge | None = None


def baseline(
    *,
    recent_count: int,
    recent_span: timedelta,
    seasonal_counts: list[int],
    rules: SurgeRules,
) -> Baseline:
    """The expected count of one window from the recent count (over ``recent_span``, zero
    when there is none yet) and the counts of the two hours around this time on previous days."""
    per_window = rules.window / HOUR
    candidates = [Baseline(rules.floor_per_hour * per_window, "floor")]
    if recent_span >= rules.window:
        candidates.append(Baseline(recent_count * (rules.window / recent_span), "recent"))
    if seasonal_counts:
        candidates.append(Baseline(statistics.median(seasonal_counts) / 2 * per_window, "seasonal"))
    return max(candidates, key=lambda b: b.expected)


def is_surge(count: int, expected: float, rules: SurgeRules) -> tuple[bool, float]:
    """Whether a window count is a surge over this expectation, and its tail probability."""
    p_value = poisson_tail(count, expected * rules.overdispersion)
    large = count >= rules.min_count and count >= rules.min_ratio * expected
    return large and p_value <= rules.max_p, p_value


def is_over(count: int, expected: float, rules: SurgeRules) -> bool:
    """Whether a surge has fallen back (under half of both of its limits)."""
    return count < rules.min_count / 2 or count < rules.min_ratio * expected / 2


class SurgeDetector:
    """Per-series minute and hour counts, and the surges they raise."""

    def __init__(self, rules: SurgeRules | None = None) -> None:
        self.rules = rules or SurgeRules()
        self._series: dict[Series, _SeriesState] = {}
        self._first: datetime | None = None
        self.history: deque[Surge] = deque(maxlen=500)

    def add(self, observation: Observation) -> None:
        """Count an observation (the caller has dropped repeats)."""
        minute = bucket_start(observation.at, MINUTE)
        hour = bucket_start(observation.at, HOUR)
        channels = [observation.channel]
        if self.rules.across_channels:
            channels.append(ALL_CHANNELS)
        for channel in channels:
            state = self._state((observation.category, channel))
            state.minutes.add(minute)
            state.hours[hour] = state.hours.get(hour, 0) + 1
        if self._first is None or observation.at < self._first:
            self._first = observation.at

    def _state(self, series: Series) -> _SeriesState:
        state = self._series.get(series)
        if state is None:
            span = int((self.rules.window + self.rules.recent) / MINUTE) + 2
            state = self._series[series] = _SeriesState(MinuteCounts(span))
        return state

    def _window_count(self, state: _SeriesState, start: datetime, end: datetime) -> int:
        return state.minutes.between(start, end)

    def baseline_of(self, series: Series, now: datetime) -> Baseline:
        """The expected count of the window ending at ``now`` for one series."""
        state = self._state(series)
        rules = self.rules
        end = bucket_start(now, MINUTE) + MINUTE
        window_start = end - rules.window
        recent_start = window_start - rules.recent
        if self._first is not None:
            recent_start = max(recent_start, bucket_start(self._first, MINUTE))
        recent_span = max(window_start - recent_start, timedelta(0))
        recent_count = self._window_count(state, recent_start, window_start)
        seasonal = []
        for days in range(1, rules.seasonal_days + 1):
            then = now - timedelta(days=days)
            if self._first is None or then - HOUR < self._first:
                break
            around = bucket_start(then - HOUR / 2, HOUR)
            seasonal.append(state.hours.get(around, 0) + state.hours.get(around + HOUR, 0))
        return baseline(
            recent_count=recent_count,
            recent_span=recent_span,
            seasonal_counts=seasonal,
            rules=rules,
        )

    def evaluate(self, now: datetime) -> list[Surge]:
        """Judge every series at ``now``: the surges that start or end now (an ended one has
        ``ended_at``); ``history`` keeps the latest state of each."""
        rules = self.rules
        if self._first is None or now - self._first < rules.warmup:
            return []
        end = bucket_start(now, MINUTE) + MINUTE
        window_start = end - rules.window
        changed = []
        for series, state in self._series.items():
            count = self._window_count(state, window_start, end)
            if count == 0 and state.active is None:
                continue
            expected = self.baseline_of(series, now)
            if state.active is not None:
                if is_over(count, expected.expected, rules):
                    changed.append(self._finish(state, now))
                elif count > state.active.peak_count:
                    state.active = replace(state.active, peak_count=count)
                continue
            surge, p_value = is_surge(count, expected.expected, rules)
            if surge:
                category, channel = series
                state.active = Surge(
                    surge_id=surge_id(category, channel, window_start),
                    category=category,
                    channel=channel,
                    window_start=window_start,
                    detected_at=now,
                    count=count,
                    expected=round(expected.expected, 4),
                    p_value=p_value,
                    baseline=expected.source,
                    peak_count=count,
                )
                changed.append(state.active)
                self.history.append(state.active)
        return changed

    def _finish(self, state: _SeriesState, now: datetime) -> Surge:
        assert state.active is not None
        ended = replace(state.active, ended_at=now)
        for index, old in enumerate(self.history):
            if old.surge_id == ended.surge_id:
                self.history[index] = ended
        state.active = None
        return ended

    def active(self) -> list[Surge]:
        """The surges not over yet."""
        return [s.active for s in self._series.values() if s.active is not None]

    def prune(self, now: datetime) -> None:
        """Forget hours older than the seasonal baseline needs (the minutes are a ring)."""
        hour_horizon = now - timedelta(days=self.rules.seasonal_days + 1)
        for state in self._series.values():
            for hour in [h for h in state.hours if h < hour_horizon]:
                del state.hours[hour]
