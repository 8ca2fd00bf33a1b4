"""A business calendar keeps its open spans per day: answers never depend on what it has seen."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.router import sla
from services.router.sla import BusinessCalendar, add_business_time, business_seconds_between

DST_DAYS = {
    "Europe/London": (date(2026, 3, 29), date(2026, 10, 25)),
    "America/New_York": (date(2026, 3, 8), date(2026, 11, 1)),
}


def calendar(timezone: str) -> BusinessCalendar:
    """Split shifts, an overnight shift across the changes (Saturday night) and a holiday."""
    return BusinessCalendar.model_validate(
        {
            "name": "cached",
            "timezone": timezone,
            "hours": {
                "mon": ["08:00-12:30", "13:30-20:00"],
                "tue": ["08:00-12:30", "13:30-20:00"],
                "wed": ["08:00-20:00"],
                "thu": ["08:00-20:00"],
                "fri": ["08:00-18:00"],
                "sat": ["22:00-06:00"],
                "sun": ["10:00-14:00"],
            },
            "holidays": [date(2026, 10, 26), date(2026, 3, 9)],
        }
    )


WARM = {zone: calendar(zone) for zone in DST_DAYS}

instants = st.tuples(
    st.sampled_from(sorted(DST_DAYS)),
    st.integers(0, 1),
    st.integers(-3 * 24 * 60, 3 * 24 * 60),
)


def around(zone: str, which: int, minutes: int) -> datetime:
    day = DST_DAYS[zone][which]
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(minutes=minutes)


@settings(max_examples=300, deadline=None)
@given(instants, st.integers(0, 3 * 24 * 3600), st.integers(0, 4 * 24 * 60))
def test_a_warm_calendar_answers_as_a_fresh_one_across_dst(
    instant: tuple[str, int, int], seconds: int, span_minutes: int
) -> None:
    zone = instant[0]
    start = around(*instant)
    end = start + timedelta(minutes=span_minutes)
    warm = WARM[zone]  # shared by every example, so its cache holds what earlier ones saw
    assert add_business_time(warm, start, seconds) == add_business_time(
        calendar(zone), start, seconds
    )
    assert business_seconds_between(warm, start, end) == business_seconds_between(
        calendar(zone), start, end
    )


def test_the_cache_is_bounded_and_answers_stay_right_when_it_starts_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    start = datetime(2026, 10, 1, tzinfo=UTC)
    end = datetime(2026, 11, 15, tzinfo=UTC)
    fresh = calendar("Europe/London")
    expected = business_seconds_between(fresh, start, end)
    due = add_business_time(fresh, start, expected)
    monkeypatch.setattr(sla, "SPAN_CACHE_DAYS", 5)
    small = calendar("Europe/London")
    assert business_seconds_between(small, start, end) == expected
    assert 0 < len(small._hours.spans_by_day) <= 5
    assert add_business_time(small, start, expected) == due


def test_a_calendar_that_has_worked_still_equals_its_configuration() -> None:
    worked = calendar("America/New_York")
    add_business_time(worked, datetime(2026, 3, 6, tzinfo=UTC), 40 * 3600)
    assert worked._hours.spans_by_day, "the spans it computed are kept"
    assert worked == calendar("America/New_York")
    assert sla.SlaConfig(
        policy=sla.SlaPolicy(targets={"*": {"*": sla.SlaTarget()}}), calendars={"cached": worked}
    ) == sla.SlaConfig(
        policy=sla.SlaPolicy(targets={"*": {"*": sla.SlaTarget()}}),
        calendars={"cached": calendar("America/New_York")},
    )


def pickled(calendar: BusinessCalendar) -> BusinessCalendar:
    copied: BusinessCalendar = pickle.loads(pickle.dumps(calendar))  # noqa: S301 (our own bytes)
    return copied


@pytest.mark.parametrize("clone", [copy.deepcopy, pickled])
def test_a_copied_calendar_starts_with_an_empty_cache_and_the_same_answers(
    clone: Callable[[BusinessCalendar], BusinessCalendar],
) -> None:
    worked = calendar("Europe/London")
    start = datetime(2026, 10, 23, 15, tzinfo=UTC)
    due = add_business_time(worked, start, 30 * 3600)
    copied = clone(worked)
    assert copied == worked
    assert not copied._hours.spans_by_day
    assert add_business_time(copied, start, 30 * 3600) == due
