"""SLA arithmetic: business calendars, policy and config loading, pausable clocks."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.common.cases import SlaMetricName
from services.common.errors import ConfigurationError
from services.common.messages import Channel
from services.router.sla import (
    BusinessCalendar,
    SlaAction,
    SlaClock,
    SlaConfigError,
    SlaPolicy,
    SlaTarget,
    SlaTargetNotFound,
    Weekday,
    add_business_time,
    business_seconds_between,
    due_at,
    due_events,
    elapsed,
    is_open,
    load_calendars,
    load_policy,
    load_sla_config,
    mark_fired,
    met,
    next_open,
    pause_clock,
    remaining,
    resume_clock,
    start_clock,
    stop_clock,
    target_for,
    warning_at,
)

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
HOUR = 3600.0
WORKDAYS = ("mon", "tue", "wed", "thu", "fri")
EVERY_DAY = (*WORKDAYS, "sat", "sun")


def calendar(
    hours: dict[str, list[str]] | None = None,
    *,
    timezone: str = "UTC",
    holidays: tuple[date, ...] = (),
    always_open: bool = False,
) -> BusinessCalendar:
    return BusinessCalendar.model_validate(
        {
            "name": "test",
            "timezone": timezone,
            "hours": hours or {},
            "holidays": list(holidays),
            "always_open": always_open,
        }
    )


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def local(zone: ZoneInfo, year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=zone)


NINE_TO_FIVE = calendar(
    {day: ["09:00-17:00"] for day in WORKDAYS},
    timezone="Europe/London",
    holidays=(date(2026, 12, 25), date(2026, 12, 28), date(2027, 1, 1)),
)
SPLIT = calendar(
    {day: ["08:00-12:00", "13:00-17:30"] for day in WORKDAYS}, timezone="Europe/London"
)
OVERNIGHT = calendar({"fri": ["22:00-06:00"], "sat": ["22:00-06:00"]})
ALWAYS = calendar(always_open=True)


# Calendars: validation.


def test_intervals_are_normalised() -> None:
    cal = calendar({"mon": ["8:00-12:00", " 22:00 - 00:00 ", "13:00-14:00"]})
    assert cal.hours[Weekday.MON] == ["08:00-12:00", "22:00-24:00", "13:00-14:00"]


def test_touching_intervals_are_not_overlaps() -> None:
    cal = calendar({"sun": ["22:00-02:00"], "mon": ["02:00-10:00", "10:00-12:00"]})
    assert business_seconds_between(cal, utc(2026, 1, 4, 21), utc(2026, 1, 5, 13)) == 14 * HOUR
    assert is_open(cal, utc(2026, 1, 5, 1))


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"timezone": "Europe/Lndon", "hours": {"mon": ["09:00-17:00"]}}, "'Europe/Lndon'"),
        ({"timezone": "", "hours": {"mon": ["09:00-17:00"]}}, "unknown time zone"),
        ({"hours": {"mon": ["9-17"]}}, "invalid interval '9-17'"),
        ({"hours": {"mon": ["25:00-26:00"]}}, "'25:00-26:00'"),
        ({"hours": {"mon": ["09:60-10:00"]}}, "'09:60-10:00'"),
        ({"hours": {"mon": ["24:00-01:00"]}}, "'24:00-01:00'"),
        ({"hours": {"mon": ["09:00-24:30"]}}, "'09:00-24:30'"),
        ({"hours": {"mon": ["09:00-09:00"]}}, "empty interval '09:00-09:00'"),
        ({"hours": {"mon": ["08:00-12:00", "11:00-13:00"]}}, "mon 08:00-12:00 and mon 11:00-13:00"),
        ({"hours": {"mon": ["22:00-06:00"], "tue": ["05:00-09:00"]}}, "mon 22:00-06:00"),
        ({"hours": {"sun": ["22:00-02:00"], "mon": ["01:00-09:00"]}}, "sun 22:00-02:00"),
        ({"hours": {}}, "no open hours"),
        ({"hours": {"mon": []}}, "no open hours"),
        ({"hours": {"monday": ["09:00-17:00"]}}, "'mon'"),
        ({"always_open": True, "hours": {"mon": ["09:00-17:00"]}}, "always_open"),
    ],
)
def test_invalid_calendars_name_the_problem(fields: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment.replace("(", r"\(")):
        BusinessCalendar.model_validate({"name": "x", "timezone": "UTC", **fields})


# Calendars: open hours.


@pytest.mark.parametrize(
    ("at", "open_", "opens"),
    [
        (utc(2026, 1, 5, 7, 59), False, utc(2026, 1, 5, 8)),
        (utc(2026, 1, 5, 8), True, utc(2026, 1, 5, 8)),
        (utc(2026, 1, 5, 11, 59), True, utc(2026, 1, 5, 11, 59)),
        (utc(2026, 1, 5, 12), False, utc(2026, 1, 5, 13)),
        (utc(2026, 1, 5, 12, 30), False, utc(2026, 1, 5, 13)),
        (utc(2026, 1, 5, 17, 29), True, utc(2026, 1, 5, 17, 29)),
        (utc(2026, 1, 5, 17, 30), False, utc(2026, 1, 6, 8)),
        (utc(2026, 1, 9, 18), False, utc(2026, 1, 12, 8)),
        (utc(2026, 1, 10, 12), False, utc(2026, 1, 12, 8)),
    ],
)
def test_split_shifts_open_and_next_open(at: datetime, open_: bool, opens: datetime) -> None:
    assert is_open(SPLIT, at) is open_
    assert next_open(SPLIT, at) == opens


@pytest.mark.parametrize(
    ("start", "seconds", "expected"),
    [
        (utc(2026, 1, 5, 11), 2 * HOUR, utc(2026, 1, 5, 14)),
        (utc(2026, 1, 5, 12, 15), 60, utc(2026, 1, 5, 13, 1)),
        (utc(2026, 1, 5, 11), HOUR, utc(2026, 1, 5, 12)),
        (utc(2026, 1, 5, 17), HOUR, utc(2026, 1, 6, 8, 30)),
        (utc(2026, 1, 9, 17), HOUR, utc(2026, 1, 12, 8, 30)),
        (utc(2026, 1, 10, 12), HOUR, utc(2026, 1, 12, 9)),
        (utc(2026, 1, 10, 12), 0, utc(2026, 1, 10, 12)),
        (utc(2026, 1, 5, 8), 5 * 8.5 * HOUR, utc(2026, 1, 9, 17, 30)),
    ],
)
def test_split_shifts_add(start: datetime, seconds: float, expected: datetime) -> None:
    assert add_business_time(SPLIT, start, seconds) == expected


def test_split_shifts_between() -> None:
    assert business_seconds_between(SPLIT, utc(2026, 1, 5), utc(2026, 1, 6)) == 8.5 * HOUR
    assert business_seconds_between(SPLIT, utc(2026, 1, 5), utc(2026, 1, 12)) == 42.5 * HOUR
    assert business_seconds_between(SPLIT, utc(2026, 1, 5, 11), utc(2026, 1, 5, 14)) == 2 * HOUR
    assert business_seconds_between(SPLIT, utc(2026, 1, 6), utc(2026, 1, 5)) == 0


@pytest.mark.parametrize(
    ("at", "open_", "opens"),
    [
        (utc(2026, 1, 9, 21), False, utc(2026, 1, 9, 22)),
        (utc(2026, 1, 9, 23), True, utc(2026, 1, 9, 23)),
        (utc(2026, 1, 10, 5, 59), True, utc(2026, 1, 10, 5, 59)),
        (utc(2026, 1, 10, 6), False, utc(2026, 1, 10, 22)),
        (utc(2026, 1, 11, 3), True, utc(2026, 1, 11, 3)),
        (utc(2026, 1, 11, 6), False, utc(2026, 1, 16, 22)),
    ],
)
def test_overnight_shifts_open_and_next_open(at: datetime, open_: bool, opens: datetime) -> None:
    assert is_open(OVERNIGHT, at) is open_
    assert next_open(OVERNIGHT, at) == opens


def test_overnight_shifts_add_and_between() -> None:
    assert business_seconds_between(OVERNIGHT, utc(2026, 1, 9), utc(2026, 1, 12)) == 16 * HOUR
    assert add_business_time(OVERNIGHT, utc(2026, 1, 9, 21), 9 * HOUR) == utc(2026, 1, 10, 23)
    assert add_business_time(OVERNIGHT, utc(2026, 1, 10, 3), 3 * HOUR) == utc(2026, 1, 10, 6)
    assert add_business_time(OVERNIGHT, utc(2026, 1, 10, 3), 4 * HOUR) == utc(2026, 1, 10, 23)


# Calendars: holidays and year ends.


@pytest.mark.parametrize(
    ("start", "seconds", "expected"),
    [
        (utc(2026, 12, 24, 16, 30), HOUR, utc(2026, 12, 29, 9, 30)),
        (utc(2026, 12, 31, 16), 2 * HOUR, utc(2027, 1, 4, 10)),
        (utc(2026, 12, 25, 12), 0.5 * HOUR, utc(2026, 12, 29, 9, 30)),
    ],
)
def test_holidays_are_skipped(start: datetime, seconds: float, expected: datetime) -> None:
    assert add_business_time(NINE_TO_FIVE, start, seconds) == expected


def test_holidays_are_closed_all_day() -> None:
    assert not is_open(NINE_TO_FIVE, utc(2026, 12, 25, 12))
    assert next_open(NINE_TO_FIVE, utc(2026, 12, 24, 17)) == utc(2026, 12, 29, 9)
    weeks = business_seconds_between(NINE_TO_FIVE, utc(2026, 12, 21), utc(2027, 1, 4))
    assert weeks == 7 * 8 * HOUR


def test_overnight_shift_is_cut_at_a_holidays_midnight() -> None:
    cal = calendar({"thu": ["22:00-06:00"], "fri": ["22:00-06:00"]}, holidays=(date(2026, 12, 25),))
    assert is_open(cal, utc(2026, 12, 24, 23))
    assert not is_open(cal, utc(2026, 12, 25, 1))
    assert not is_open(cal, utc(2026, 12, 25, 23))
    assert is_open(cal, utc(2026, 12, 26, 1))
    assert next_open(cal, utc(2026, 12, 25)) == utc(2026, 12, 26)
    assert business_seconds_between(cal, utc(2026, 12, 24), utc(2026, 12, 27)) == 8 * HOUR
    assert add_business_time(cal, utc(2026, 12, 24, 23), 2 * HOUR) == utc(2026, 12, 26, 1)


def test_always_open_with_a_holiday() -> None:
    cal = calendar(always_open=True, holidays=(date(2026, 12, 25),), timezone="Europe/London")
    assert business_seconds_between(cal, utc(2026, 12, 24), utc(2026, 12, 27)) == 48 * HOUR
    assert add_business_time(cal, utc(2026, 12, 24, 23), 2 * HOUR) == utc(2026, 12, 26, 1)


def test_a_calendar_that_never_opens_gives_up() -> None:
    first = date(2026, 1, 1)
    cal = calendar(
        {day: ["09:00-17:00"] for day in EVERY_DAY},
        holidays=tuple(first + timedelta(days=n) for n in range(800)),
    )
    with pytest.raises(ValueError, match="no open time in the 400 days"):
        add_business_time(cal, utc(2026, 1, 1), HOUR)
    with pytest.raises(ValueError, match="no open time"):
        next_open(cal, utc(2026, 1, 1))
    assert not is_open(cal, utc(2026, 6, 1, 12))
    assert business_seconds_between(cal, utc(2026, 1, 1), utc(2027, 12, 31)) == 0


def test_a_long_closure_is_crossed_within_the_limit() -> None:
    cal = calendar(
        {"mon": ["09:00-17:00"]},
        holidays=tuple(date(2026, 1, 5) + timedelta(weeks=n) for n in range(50)),
    )
    assert next_open(cal, utc(2026, 1, 1)) == utc(2026, 12, 21, 9)


# Calendars: daylight saving.

DST_DAYS = [
    pytest.param(LONDON, date(2026, 3, 29), 7, id="london-spring"),
    pytest.param(LONDON, date(2026, 10, 25), 9, id="london-autumn"),
    pytest.param(NEW_YORK, date(2026, 3, 8), 7, id="new-york-spring"),
    pytest.param(NEW_YORK, date(2026, 11, 1), 9, id="new-york-autumn"),
]


def on(zone: ZoneInfo, day: date, hour: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=zone)


@pytest.mark.parametrize(("zone", "day", "night_hours"), DST_DAYS)
def test_a_nine_to_five_day_is_eight_hours_on_dst_days(
    zone: ZoneInfo, day: date, night_hours: int
) -> None:
    cal = calendar({d: ["09:00-17:00"] for d in EVERY_DAY}, timezone=str(zone))
    eve, morrow = day - timedelta(days=1), day + timedelta(days=1)
    assert business_seconds_between(cal, on(zone, day), on(zone, morrow)) == 8 * HOUR
    assert add_business_time(cal, on(zone, day, 9), 8 * HOUR) == on(zone, day, 17)
    assert add_business_time(cal, on(zone, eve, 16), 2 * HOUR) == on(zone, day, 10)
    assert add_business_time(cal, on(zone, day, 16), 2 * HOUR) == on(zone, morrow, 10)
    assert business_seconds_between(cal, on(zone, eve, 17), on(zone, day, 9)) == 0
    result = add_business_time(cal, on(zone, day, 9), HOUR)
    assert result.tzinfo is UTC
    assert result == on(zone, day, 10)


@pytest.mark.parametrize(("zone", "day", "night_hours"), DST_DAYS)
def test_an_overnight_shift_follows_the_clocks(zone: ZoneInfo, day: date, night_hours: int) -> None:
    cal = calendar({"sat": ["22:00-06:00"]}, timezone=str(zone))
    start, end = on(zone, day - timedelta(days=1)), on(zone, day + timedelta(days=2))
    assert business_seconds_between(cal, start, end) == night_hours * HOUR


def test_hours_inside_the_spring_gap_are_empty() -> None:
    cal = calendar({"sun": ["01:15-01:45"]}, timezone="Europe/London")
    assert business_seconds_between(cal, utc(2026, 3, 29), utc(2026, 3, 30)) == 0
    assert business_seconds_between(cal, utc(2026, 3, 22), utc(2026, 3, 23)) == 0.5 * HOUR
    assert next_open(cal, utc(2026, 3, 28)) == utc(2026, 4, 5, 0, 15)


def test_an_interval_ending_in_the_spring_gap_ends_when_the_clocks_jump() -> None:
    cal = calendar({"sun": ["00:00-01:30"]}, timezone="Europe/London")
    assert business_seconds_between(cal, utc(2026, 3, 29), utc(2026, 3, 30)) == HOUR
    assert not is_open(cal, utc(2026, 3, 29, 1, 15))


def test_hours_in_the_autumn_overlap_start_at_the_first_occurrence() -> None:
    cal = calendar({"sun": ["01:00-02:00"]}, timezone="Europe/London")
    assert business_seconds_between(cal, utc(2026, 10, 25), utc(2026, 10, 26)) == 2 * HOUR
    second_half_past_one = datetime(2026, 10, 25, 1, 30, tzinfo=LONDON, fold=1)
    assert second_half_past_one.astimezone(UTC) == utc(2026, 10, 25, 1, 30)
    assert is_open(cal, second_half_past_one)
    assert next_open(cal, utc(2026, 10, 24, 12)) == utc(2026, 10, 25, 0)


# Calendars: inputs.


@pytest.mark.parametrize(
    "call",
    [
        lambda: is_open(NINE_TO_FIVE, datetime(2026, 1, 5, 10)),
        lambda: next_open(NINE_TO_FIVE, datetime(2026, 1, 5, 10)),
        lambda: add_business_time(NINE_TO_FIVE, datetime(2026, 1, 5, 10), 60),
        lambda: business_seconds_between(NINE_TO_FIVE, datetime(2026, 1, 5), utc(2026, 1, 6)),
        lambda: business_seconds_between(NINE_TO_FIVE, utc(2026, 1, 5), datetime(2026, 1, 6)),
        lambda: start_clock(SlaMetricName.RESOLUTION, 60, datetime(2026, 1, 5)),
        lambda: elapsed(
            start_clock(SlaMetricName.RESOLUTION, 60, utc(2026, 1, 5)), ALWAYS, datetime(2026, 1, 6)
        ),
    ],
)
def test_naive_datetimes_are_rejected(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        call()


@pytest.mark.parametrize("seconds", [-1.0, float("nan"), float("inf")])
def test_bad_amounts_of_business_time_are_rejected(seconds: float) -> None:
    with pytest.raises(ValueError, match="business time"):
        add_business_time(NINE_TO_FIVE, utc(2026, 1, 5), seconds)


def test_results_are_in_utc() -> None:
    start = local(NEW_YORK, 2026, 1, 5, 9)
    assert next_open(NINE_TO_FIVE, start).tzinfo is UTC
    assert next_open(ALWAYS, start).tzinfo is UTC
    assert add_business_time(ALWAYS, start, 0).tzinfo is UTC


def test_thirty_days_of_business_time_is_fast() -> None:
    started = time.perf_counter()
    due = add_business_time(NINE_TO_FIVE, utc(2026, 1, 5, 9), 30 * 86_400)
    took = time.perf_counter() - started
    assert business_seconds_between(NINE_TO_FIVE, utc(2026, 1, 5, 9), due) == 30 * 86_400
    assert took < 0.25


# Calendars: properties.

PROPERTY_CALENDARS = [
    NINE_TO_FIVE,
    SPLIT,
    OVERNIGHT,
    ALWAYS,
    calendar({day: ["09:00-17:00"] for day in WORKDAYS}, timezone="America/New_York"),
    calendar(
        {"sat": ["22:00-02:00"], "sun": ["02:00-06:00", "08:00-12:00"]},
        timezone="Australia/Lord_Howe",
        holidays=(date(2026, 4, 5), date(2027, 10, 3)),
    ),
    calendar(always_open=True, timezone="America/New_York", holidays=(date(2026, 11, 1),)),
]

calendars = st.sampled_from(PROPERTY_CALENDARS)
instants = st.datetimes(
    min_value=datetime(2025, 10, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
amounts = st.floats(min_value=0, max_value=10 * 86_400, allow_nan=False)
fast = settings(max_examples=60, deadline=None)


@fast
@given(calendars, instants, amounts)
def test_between_undoes_add(cal: BusinessCalendar, start: datetime, seconds: float) -> None:
    due = add_business_time(cal, start, seconds)
    assert due >= start
    assert business_seconds_between(cal, start, due) == pytest.approx(seconds, abs=1e-6)
    if seconds >= 1:
        assert business_seconds_between(cal, start, due - timedelta(milliseconds=1)) < seconds


@fast
@given(calendars, instants, amounts, amounts)
def test_add_is_monotonic_and_additive(
    cal: BusinessCalendar, start: datetime, first: float, second: float
) -> None:
    low, high = sorted((first, second))
    assert add_business_time(cal, start, low) <= add_business_time(cal, start, high)
    # A second amount the float sum absorbs (5e-324 after 5 days) still counts as a microsecond
    # when added on its own: the two sums are of different amounts.
    assume(first + second > first or second == 0)
    chained = add_business_time(cal, add_business_time(cal, start, first), second)
    direct = add_business_time(cal, start, first + second)
    assert abs(chained - direct) <= timedelta(microseconds=2)


spans = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30))


@fast
@given(calendars, instants, spans, spans)
def test_between_is_monotonic_additive_and_at_most_wall_time(
    cal: BusinessCalendar, start: datetime, first: timedelta, second: timedelta
) -> None:
    middle = start + first
    end = middle + second
    whole = business_seconds_between(cal, start, end)
    part = business_seconds_between(cal, start, middle)
    assert part <= whole <= (end - start).total_seconds()
    assert part + business_seconds_between(cal, middle, end) == pytest.approx(whole, abs=1e-6)


@fast
@given(calendars, instants)
def test_next_open_is_open_with_no_business_time_before_it(
    cal: BusinessCalendar, at: datetime
) -> None:
    opens = next_open(cal, at)
    assert opens >= at
    assert is_open(cal, opens)
    assert business_seconds_between(cal, at, opens) == 0
    assert (opens == at) is is_open(cal, at)


@fast
@given(instants, amounts, st.sampled_from([UTC, LONDON, NEW_YORK]))
def test_always_open_is_wall_time(start: datetime, seconds: float, zone: ZoneInfo) -> None:
    cal = calendar(always_open=True, timezone=str(zone))
    due = add_business_time(cal, start, seconds)
    assert (due - start).total_seconds() == pytest.approx(seconds, abs=1e-6)
    assert business_seconds_between(cal, start, due) == pytest.approx(seconds, abs=1e-6)
    assert is_open(cal, start)


# Policy and configuration.


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90),
        ("2m", 120),
        ("4h", 4 * 3600),
        ("1d", 86_400),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("1w", 7 * 86_400),
        ("2d4h", 2 * 86_400 + 4 * 3600),
        ("PT4H", 4 * 3600),
        ("P1DT2H", 26 * 3600),
        (90, 90),
        (2.5, 2.5),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    target = SlaTarget.model_validate({"first_response": value})
    assert target.first_response == timedelta(seconds=seconds)
    assert target.resolution is None


def policy_text(duration: object) -> str:
    return yaml.safe_dump({"targets": {"chat": {"P1": {"first_response": duration}}}})


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("-5m", "must be positive, got '-5m'"),
        (-300, "must be positive, got -300"),
        (0, "must be positive, got 0"),
        ("0s", "must be positive"),
        ("PT0S", "must be positive"),
        ("-PT4H", "must be positive"),
        ("5x", "invalid duration '5x'"),
        ("", "invalid duration ''"),
        ("1h 30m", "invalid duration '1h 30m'"),
        ("Pfoo", "invalid duration 'Pfoo'"),
        (True, "invalid duration True"),
        ([1], "invalid duration [1]"),
    ],
)
def test_bad_durations_are_config_errors(value: object, fragment: str) -> None:
    with pytest.raises(SlaConfigError) as caught:
        load_policy(policy_text(value))
    assert "targets.chat.P1.first_response" in str(caught.value)
    assert fragment in str(caught.value)


def fallback_policy() -> SlaPolicy:
    return load_policy(
        """
targets:
  chat: {P1: {first_response: 1m}, "*": {first_response: 2m}}
  "*": {P1: {first_response: 3m}, "*": {first_response: 4m}}
"""
    )


@pytest.mark.parametrize(
    ("channel", "priority", "minutes"),
    [
        ("chat", "P1", 1),
        ("chat", "P2", 2),
        ("email", "P1", 3),
        ("email", "P3", 4),
        (Channel.CHAT, "P1", 1),
        (Channel.SOCIAL, "P4", 4),
    ],
)
def test_target_fallback_order(channel: str, priority: str, minutes: int) -> None:
    target = target_for(fallback_policy(), channel, priority)
    assert target.first_response == timedelta(minutes=minutes)


def test_missing_target_is_a_config_and_key_error() -> None:
    policy = load_policy("targets: {chat: {P1: {first_response: 1m}}}")
    with pytest.raises(SlaTargetNotFound) as caught:
        target_for(policy, "email", "P2")
    error = caught.value
    assert isinstance(error, KeyError)
    assert isinstance(error, SlaConfigError)
    assert isinstance(error, ConfigurationError)
    assert str(error).startswith("no SLA target for channel 'email' and priority 'P2'")
    assert "targets.*.*" in str(error)


def test_policy_defaults_and_metric_lookup() -> None:
    policy = load_policy('targets: {"*": {"*": {resolution: 3d, follow_up: 2d}}}')
    assert policy.warning_share == 0.8
    assert policy.on_warning == [SlaAction.NOTIFY]
    assert policy.on_breach == [SlaAction.ESCALATE, SlaAction.NOTIFY]
    target = target_for(policy, "web", "P3")
    assert target.for_metric(SlaMetricName.RESOLUTION) == timedelta(days=3)
    assert target.for_metric(SlaMetricName.FOLLOW_UP) == timedelta(days=2)
    assert target.for_metric(SlaMetricName.FIRST_RESPONSE) is None


FULL_CONFIG = """
warning_share: 0.75
on_warning: [notify, raise_priority]
on_breach: [escalate, reoffer, notify]
calendars:
  support-emea:
    timezone: Europe/London
    hours:
      mon: ["08:00-12:00", "13:00-18:00"]
      tue: ["08:00-12:00", "13:00-18:00"]
      sat: ["22:00-06:00"]
    holidays: [2026-12-25, "2026-12-28"]
  always: {timezone: UTC, always_open: true}
targets:
  chat:
    P1: {first_response: 1m, resolution: 1h}
    "*": {first_response: 5m, next_response: 10m, resolution: 8h}
  "*":
    "*": {first_response: 8h, resolution: 3d, follow_up: 2d}
"""


def test_load_sla_config() -> None:
    config = load_sla_config(FULL_CONFIG)
    assert config.policy.warning_share == 0.75
    assert config.policy.on_warning == [SlaAction.NOTIFY, SlaAction.RAISE_PRIORITY]
    assert config.policy.on_breach == [SlaAction.ESCALATE, SlaAction.REOFFER, SlaAction.NOTIFY]
    emea = config.calendars["support-emea"]
    assert emea.name == "support-emea"
    assert emea.hours[Weekday.MON] == ["08:00-12:00", "13:00-18:00"]
    assert emea.holidays == [date(2026, 12, 25), date(2026, 12, 28)]
    assert config.calendars["always"].always_open
    assert target_for(config.policy, "chat", "P1").resolution == timedelta(hours=1)
    assert target_for(config.policy, "chat", "P4").next_response == timedelta(minutes=10)
    assert target_for(config.policy, "email", "P1").follow_up == timedelta(days=2)


def test_smaller_loaders_read_their_own_section() -> None:
    assert load_policy(FULL_CONFIG) == load_sla_config(FULL_CONFIG).policy
    assert load_calendars(FULL_CONFIG) == load_sla_config(FULL_CONFIG).calendars
    bare = load_calendars("emea: {timezone: Europe/London, hours: {mon: ['09:00-17:00']}}")
    assert list(bare) == ["emea"]
    assert bare["emea"].name == "emea"


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("targets: {*: x}", ["not valid YAML", "line 1"]),
        ("- a\n- b", ["mapping at the top level", "list"]),
        ("", ["targets: required"]),
        (
            "calendars: {emea: {timezone: Europe/Lndon, hours: {mon: ['09:00-17:00']}}}\n"
            "targets: {}",
            ["calendars.emea.timezone", "'Europe/Lndon'"],
        ),
        (
            "calendars: {emea: {timezone: UTC, hours: {mon: ['08:00-12:00', '11:00-13:00']}}}\n"
            "targets: {}",
            ["calendars.emea", "overlap", "mon 08:00-12:00 and mon 11:00-13:00"],
        ),
        (
            "calendars: {emea: {timezone: UTC, hours: {mon: ['9 to 5']}}}\ntargets: {}",
            ["calendars.emea.hours.mon.0", "'9 to 5'"],
        ),
        (
            "calendars: {emea: {timezone: UTC, hours: {monday: ['09:00-17:00']}}}\ntargets: {}",
            ["calendars.emea.hours.monday (key)", "'monday'"],
        ),
        ("calendars: [a]\ntargets: {}", ["calendars: expected a mapping"]),
        ("calendars: {emea: 5}\ntargets: {}", ["calendars.emea: expected a mapping"]),
        (
            "calendars: {emea: {name: other, timezone: UTC, always_open: true}}\ntargets: {}",
            ["calendars.emea.name", "'other'"],
        ),
        ("targets: {chat: {P1: {first_response: -5m}}}", ["targets.chat.P1.first_response", "-5m"]),
        ("targets: {chat: {P1: {first_reply: 5m}}}", ["targets.chat.P1.first_reply: unknown key"]),
        ("targets: {emial: {}}", ["targets.emial (key)", "unknown channel 'emial'"]),
        ("targets: {chat: {P9: {}}}", ["targets.chat.P9 (key)", "unknown priority 'P9'"]),
        ("warning_share: 1.5\ntargets: {}", ["warning_share", "1.5"]),
        ("warning_share: 0\ntargets: {}", ["warning_share", "greater than 0"]),
        ("on_breach: [page]\ntargets: {}", ["on_breach.0", "'page'"]),
        ("colour: blue\ntargets: {}", ["colour: unknown key"]),
    ],
)
def test_config_errors_name_the_section(text: str, fragments: list[str]) -> None:
    with pytest.raises(SlaConfigError) as caught:
        load_sla_config(text)
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_config_errors_are_reported_together() -> None:
    text = """
calendars:
  emea: {timezone: Mars/Olympus, hours: {mon: ["09:00-17:00"]}}
  apac: {timezone: UTC}
targets: {chat: {P1: {resolution: 1x}}}
"""
    with pytest.raises(SlaConfigError) as caught:
        load_sla_config(text)
    message = str(caught.value)
    assert "calendars.emea.timezone" in message
    assert "calendars.apac: calendar 'apac' has no open hours" in message
    assert "targets.chat.P1.resolution: invalid duration '1x'" in message
    with pytest.raises(SlaConfigError, match="Mars/Olympus"):
        load_calendars(text)


# Clocks.

MONDAY_9 = utc(2026, 1, 5, 9)


def test_a_running_clock_is_due_after_its_target_in_business_time() -> None:
    clock = start_clock(SlaMetricName.FIRST_RESPONSE, 4 * HOUR, MONDAY_9)
    assert clock.is_running
    assert due_at(clock, NINE_TO_FIVE) == utc(2026, 1, 5, 13)
    assert warning_at(clock, NINE_TO_FIVE, 0.5) == utc(2026, 1, 5, 11)
    assert elapsed(clock, NINE_TO_FIVE, utc(2026, 1, 5, 10)) == HOUR
    assert remaining(clock, NINE_TO_FIVE, utc(2026, 1, 6, 10)) == -5 * HOUR
    late = start_clock(SlaMetricName.RESOLUTION, 6 * HOUR, utc(2026, 1, 5, 15))
    assert due_at(late, NINE_TO_FIVE) == utc(2026, 1, 6, 13)


def test_a_clock_started_while_closed_counts_from_the_opening() -> None:
    clock = start_clock(SlaMetricName.FIRST_RESPONSE, HOUR, utc(2026, 1, 10, 12))
    assert due_at(clock, NINE_TO_FIVE) == utc(2026, 1, 12, 10)
    assert elapsed(clock, NINE_TO_FIVE, utc(2026, 1, 12, 9)) == 0


def test_pausing_stops_accumulation_and_moves_the_due_time() -> None:
    clock = start_clock(SlaMetricName.RESOLUTION, 4 * HOUR, MONDAY_9)
    original_due = due_at(clock, NINE_TO_FIVE)
    paused = pause_clock(clock, NINE_TO_FIVE, utc(2026, 1, 5, 10))
    assert paused.is_paused
    assert paused.elapsed_before_pause == HOUR
    assert due_at(paused, NINE_TO_FIVE) is None
    assert warning_at(paused, NINE_TO_FIVE, 0.8) is None
    assert elapsed(paused, NINE_TO_FIVE, utc(2026, 1, 7, 12)) == HOUR
    assert remaining(paused, NINE_TO_FIVE, utc(2026, 1, 7, 12)) == 3 * HOUR
    resumed = resume_clock(paused, utc(2026, 1, 6, 9))
    new_due = due_at(resumed, NINE_TO_FIVE)
    assert new_due == utc(2026, 1, 6, 12)
    assert original_due is not None
    paused_for = business_seconds_between(NINE_TO_FIVE, utc(2026, 1, 5, 10), utc(2026, 1, 6, 9))
    assert business_seconds_between(NINE_TO_FIVE, original_due, new_due) == paused_for
    assert elapsed(resumed, NINE_TO_FIVE, utc(2026, 1, 6, 11)) == 3 * HOUR


def test_pause_resume_and_stop_are_idempotent() -> None:
    clock = start_clock(SlaMetricName.NEXT_RESPONSE, HOUR, MONDAY_9)
    assert resume_clock(clock, utc(2026, 1, 5, 10)) is clock
    paused = pause_clock(clock, NINE_TO_FIVE, utc(2026, 1, 5, 9, 30))
    assert pause_clock(paused, NINE_TO_FIVE, utc(2026, 1, 5, 9, 45)) is paused
    stopped = stop_clock(paused, NINE_TO_FIVE, utc(2026, 1, 5, 11))
    assert stopped.is_stopped
    assert stopped.elapsed_before_pause == 0.5 * HOUR
    assert stop_clock(stopped, NINE_TO_FIVE, utc(2026, 1, 5, 12)) is stopped
    assert resume_clock(stopped, utc(2026, 1, 5, 12)) is stopped
    assert pause_clock(stopped, NINE_TO_FIVE, utc(2026, 1, 5, 12)) is stopped


@pytest.mark.parametrize(
    ("stop_at", "outcome"),
    [(utc(2026, 1, 5, 9, 59), True), (utc(2026, 1, 5, 10), True), (utc(2026, 1, 5, 10, 1), False)],
)
def test_a_stopped_clock_says_whether_it_met_its_target(stop_at: datetime, outcome: bool) -> None:
    clock = start_clock(SlaMetricName.FIRST_RESPONSE, HOUR, MONDAY_9)
    assert met(clock) is None
    assert met(pause_clock(clock, NINE_TO_FIVE, utc(2026, 1, 5, 9, 30))) is None
    stopped = stop_clock(clock, NINE_TO_FIVE, stop_at)
    assert stopped.stopped_at == stop_at
    assert stopped.running_since is None
    assert met(stopped) is outcome
    assert due_at(stopped, NINE_TO_FIVE) is None
    assert elapsed(stopped, NINE_TO_FIVE, utc(2026, 2, 1)) == stopped.elapsed_before_pause


def test_due_events_fire_warning_then_breach_once_each() -> None:
    clock = start_clock(SlaMetricName.FIRST_RESPONSE, HOUR, MONDAY_9)
    fired: list[tuple[datetime, str]] = []
    for minute in range(0, 120, 1):
        now = MONDAY_9 + timedelta(minutes=minute)
        for event in due_events(clock, NINE_TO_FIVE, 0.8, now):
            fired.append((now, event))
            clock = mark_fired(clock, event)
        restored = SlaClock.model_validate_json(clock.model_dump_json())
        assert restored == clock
        assert due_events(restored, NINE_TO_FIVE, 0.8, now) == []
    assert fired == [(utc(2026, 1, 5, 9, 48), "warning"), (utc(2026, 1, 5, 10), "breach")]
    assert clock.warned
    assert clock.breached


def test_a_late_timer_gets_both_events_in_order() -> None:
    clock = start_clock(SlaMetricName.FIRST_RESPONSE, HOUR, MONDAY_9)
    assert due_events(clock, NINE_TO_FIVE, 0.8, utc(2026, 1, 5, 12)) == ["warning", "breach"]
    breached = mark_fired(clock, "breach")
    assert due_events(breached, NINE_TO_FIVE, 0.8, utc(2026, 1, 5, 12)) == []


def test_paused_and_stopped_clocks_and_due_events() -> None:
    clock = start_clock(SlaMetricName.FIRST_RESPONSE, HOUR, MONDAY_9)
    paused = pause_clock(clock, NINE_TO_FIVE, utc(2026, 1, 5, 9, 50))
    assert due_events(paused, NINE_TO_FIVE, 0.8, utc(2026, 1, 9)) == ["warning"]
    late = pause_clock(clock, NINE_TO_FIVE, utc(2026, 1, 5, 11))
    assert due_events(late, NINE_TO_FIVE, 0.8, utc(2026, 1, 9)) == ["warning", "breach"]
    stopped = stop_clock(clock, NINE_TO_FIVE, utc(2026, 1, 5, 11))
    assert due_events(stopped, NINE_TO_FIVE, 0.8, utc(2026, 1, 9)) == []


@pytest.mark.parametrize("target", [0.1, 1.0 / 3.0, 3599.999999, 12_345.678_901_2, 4 * HOUR])
def test_breach_is_due_exactly_at_due_at(target: float) -> None:
    clock = pause_clock(
        start_clock(SlaMetricName.RESOLUTION, target, utc(2026, 1, 5, 16, 59)),
        NINE_TO_FIVE,
        utc(2026, 1, 5, 16, 59, 0, 100_001),
    )
    clock = resume_clock(clock, utc(2026, 1, 6, 8))
    due = due_at(clock, NINE_TO_FIVE)
    assert due is not None
    assert "breach" in due_events(clock, NINE_TO_FIVE, 0.5, due)
    assert "breach" not in due_events(clock, NINE_TO_FIVE, 0.5, due - timedelta(microseconds=1))


def test_an_always_open_clock_runs_on_wall_time() -> None:
    clock = start_clock(SlaMetricName.FOLLOW_UP, 2 * 86_400, utc(2026, 1, 10, 12))
    assert due_at(clock, ALWAYS) == utc(2026, 1, 12, 12)
    assert warning_at(clock, ALWAYS, 0.5) == utc(2026, 1, 11, 12)


@pytest.mark.parametrize(
    "fields",
    [
        {"target_seconds": 0},
        {"target_seconds": -5},
        {"target_seconds": float("inf")},
        {"started_at": datetime(2026, 1, 5)},
        {"stopped_at": MONDAY_9},
        {"elapsed_before_pause": -1},
        {"colour": "blue"},
    ],
)
def test_invalid_clocks_are_rejected(fields: dict[str, Any]) -> None:
    valid = {
        "metric": "resolution",
        "target_seconds": 60,
        "started_at": MONDAY_9,
        "running_since": MONDAY_9,
    }
    SlaClock.model_validate(valid)
    with pytest.raises(ValidationError):
        SlaClock.model_validate({**valid, **fields})


def test_clock_times_are_stored_in_utc() -> None:
    clock = start_clock(SlaMetricName.RESOLUTION, 60, local(NEW_YORK, 2026, 1, 5, 9))
    assert clock.started_at == utc(2026, 1, 5, 14)
    assert clock.started_at.tzinfo == UTC


@pytest.mark.parametrize("share", [0, 1, 1.5, -0.2])
def test_bad_warning_shares_are_rejected(share: float) -> None:
    clock = start_clock(SlaMetricName.RESOLUTION, 60, MONDAY_9)
    with pytest.raises(ValueError, match="warning_share"):
        warning_at(clock, NINE_TO_FIVE, share)
    with pytest.raises(ValueError, match="warning_share"):
        due_events(clock, NINE_TO_FIVE, share, MONDAY_9)


@fast
@given(
    calendars,
    instants,
    st.floats(min_value=60, max_value=5 * 86_400),
    st.floats(min_value=0, max_value=1),
    st.floats(min_value=0, max_value=10 * 86_400),
)
def test_a_pause_moves_the_due_time_by_the_paused_business_time(
    cal: BusinessCalendar, start: datetime, target: float, share: float, pause_for: float
) -> None:
    clock = start_clock(SlaMetricName.RESOLUTION, target, start)
    original_due = due_at(clock, cal)
    assert original_due is not None
    pause_at = add_business_time(cal, start, target * share * 0.99)
    resume_at = pause_at + timedelta(seconds=pause_for)
    resumed = resume_clock(pause_clock(clock, cal, pause_at), resume_at)
    new_due = due_at(resumed, cal)
    assert new_due is not None
    assert new_due >= original_due
    paused = business_seconds_between(cal, pause_at, resume_at)
    assert business_seconds_between(cal, start, new_due) == pytest.approx(target + paused, abs=1e-5)
    assert elapsed(resumed, cal, new_due) == pytest.approx(target, abs=1e-5)
