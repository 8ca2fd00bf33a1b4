"""Service levels: business-hours calendars, SLA targets and pausable SLA clocks.

Everything here is a pure function of its inputs: nothing reads the clock, so ``now`` is always
passed in. Every datetime taken must be timezone-aware and every datetime returned is in UTC.

Open hours are kept in the calendar's local time and turned into UTC day by day, so the
arithmetic follows daylight-saving changes: a local time that does not exist (the spring gap)
stands for the instant the clocks jump, and a local time that happens twice (the autumn
overlap) stands for its first occurrence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from services.common.cases import SlaMetricName
from services.common.errors import ConfigurationError
from services.common.messages import Channel, UtcDatetime
from services.common.models import FrozenModel

#: How many days without any open time a search crosses before it gives up.
SEARCH_LIMIT_DAYS = 400

#: The key that matches any channel or any priority in the policy's targets.
WILDCARD = "*"

#: The priorities a policy can set targets for, besides the wildcard.
PRIORITIES = ("P1", "P2", "P3", "P4")

_MINUTES_PER_DAY = 24 * 60
_MINUTES_PER_WEEK = 7 * _MINUTES_PER_DAY
_ONE_DAY = timedelta(days=1)
_ONE_MICROSECOND = timedelta(microseconds=1)

#: How many local days of open spans a calendar keeps before it forgets them all.
SPAN_CACHE_DAYS = 1024

_INTERVAL = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")
_DURATION_UNITS = {"w": 7 * 86_400, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_COMPACT_DURATION = re.compile(
    r"(?P<sign>[-+]?)"
    + "".join(rf"(?:(?P<{unit}>\d+(?:\.\d+)?){unit})?" for unit in _DURATION_UNITS)
)
_ISO_DURATION = re.compile(r"[-+]?P.*", re.IGNORECASE)
_TIMEDELTA = TypeAdapter(timedelta)
_DURATION_HELP = "use e.g. '90s', '2m', '4h', '1d', '1h30m', 'PT4H' or a number of seconds"


class SlaConfigError(ConfigurationError, ValueError):
    """The SLA configuration is invalid; the message names the section and the value."""


class SlaTargetNotFound(SlaConfigError, KeyError):
    """No target in the policy matches a channel and priority, not even a wildcard."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Weekday(StrEnum):
    """A day of the week, as keyed in a calendar's hours."""

    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


_WEEKDAYS = tuple(Weekday)
_CHANNELS = tuple(channel.value for channel in Channel)


class SlaAction(StrEnum):
    """What the router does when a clock warns or breaches."""

    RAISE_PRIORITY = "raise_priority"
    REOFFER = "reoffer"
    ESCALATE = "escalate"
    NOTIFY = "notify"


SlaEvent = Literal["warning", "breach"]


def _parse_interval(text: str) -> tuple[int, int]:
    """Start and end of an ``HH:MM-HH:MM`` interval, in minutes after the start day's midnight.

    An end before the start falls on the next day, so the end may exceed one day.
    """
    match = _INTERVAL.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"invalid interval {text!r}: expected 'HH:MM-HH:MM', e.g. '09:00-17:30'")
    start_h, start_m, end_h, end_m = (int(group) for group in match.groups())
    if start_h > 23 or start_m > 59:
        raise ValueError(f"invalid start time in interval {text!r}: expected 00:00 to 23:59")
    if end_h > 24 or end_m > 59 or (end_h == 24 and end_m):
        raise ValueError(f"invalid end time in interval {text!r}: expected 00:00 to 24:00")
    start, end = start_h * 60 + start_m, end_h * 60 + end_m
    if start == end:
        raise ValueError(
            f"empty interval {text!r}: start and end are the same (use '00:00-24:00' for a day)"
        )
    if end < start:
        end += _MINUTES_PER_DAY
    return start, end


def _canonical_interval(text: str) -> str:
    start, end = _parse_interval(text)
    if end > _MINUTES_PER_DAY:
        end -= _MINUTES_PER_DAY
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


def _check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: expected an IANA name such as 'Europe/London'"
        ) from None
    return name


Interval = Annotated[str, AfterValidator(_canonical_interval)]


def _check_week(hours: Mapping[Weekday, list[str]]) -> None:
    pieces: list[tuple[int, int, str]] = []
    for index, day in enumerate(_WEEKDAYS):
        for text in hours.get(day, []):
            start, end = _parse_interval(text)
            start += index * _MINUTES_PER_DAY
            end += index * _MINUTES_PER_DAY
            label = f"{day} {text}"
            if end > _MINUTES_PER_WEEK:
                pieces.append((start, _MINUTES_PER_WEEK, label))
                pieces.append((0, end - _MINUTES_PER_WEEK, label))
            else:
                pieces.append((start, end, label))
    pieces.sort()
    for (_, first_end, first), (second_start, _, second) in pairwise(pieces):
        if second_start < first_end:
            raise ValueError(f"hours overlap: {first} and {second}")


Span = tuple[datetime, datetime]
Shifts = tuple[tuple[tuple[int, int], ...], ...]


class _OpenHours:
    """A calendar's hours as the arithmetic reads them: the zone, each weekday's shifts in
    minutes after midnight, the closed days, and the open spans (UTC) of each local day.

    A day's spans depend only on these and the date, and working them out takes time-zone
    conversions, so each day is worked out once and kept: at most ``SPAN_CACHE_DAYS`` days,
    and the cache starts again empty when full (clocks look at the days around now, so that
    is rare). Equality and copies go by the hours alone; a copy starts with an empty cache.
    """

    __slots__ = ("closed_days", "shifts", "spans_by_day", "zone")

    def __init__(self, zone: ZoneInfo, shifts: Shifts, closed_days: frozenset[date]) -> None:
        self.zone = zone
        self.shifts = shifts
        self.closed_days = closed_days
        self.spans_by_day: dict[date, tuple[Span, ...]] = {}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _OpenHours):
            return NotImplemented
        return (self.zone.key, self.shifts, self.closed_days) == (
            other.zone.key,
            other.shifts,
            other.closed_days,
        )

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[type[_OpenHours], tuple[ZoneInfo, Shifts, frozenset[date]]]:
        return _OpenHours, (self.zone, self.shifts, self.closed_days)

    def spans(self, day: date) -> tuple[Span, ...]:
        """The open spans of the shifts that start on the local ``day``, in UTC and in order."""
        spans = self.spans_by_day.get(day)
        if spans is None:
            spans = self._work_out(day)
            if len(self.spans_by_day) >= SPAN_CACHE_DAYS:
                self.spans_by_day.clear()
            self.spans_by_day[day] = spans
        return spans

    def _work_out(self, day: date) -> tuple[Span, ...]:
        shifts = self.shifts[day.weekday()]
        if not shifts:
            return ()
        midnight = datetime.combine(day, time())
        closed_today = day in self.closed_days
        closed_tomorrow = day + _ONE_DAY in self.closed_days
        spans: list[Span] = []
        for start, end in shifts:
            if closed_today:
                start = max(start, _MINUTES_PER_DAY)
            if closed_tomorrow:
                end = min(end, _MINUTES_PER_DAY)
            if start >= end:
                continue
            opens = _local_to_utc(midnight + timedelta(minutes=start), self.zone)
            closes = _local_to_utc(midnight + timedelta(minutes=end), self.zone)
            if opens < closes:
                spans.append((opens, closes))
        return tuple(spans)


class BusinessCalendar(FrozenModel):
    """When a team is open: weekly hours in a time zone, less whole-day holidays.

    Each day's hours are ``HH:MM-HH:MM`` intervals; several make split shifts, and one whose
    end is before its start runs past midnight into the next day. A holiday closes its whole
    local day, including the part of an overnight shift that runs into it.
    """

    name: str = Field(min_length=1, max_length=128)
    timezone: Annotated[str, AfterValidator(_check_zone)] = Field(
        description="IANA time zone of the hours and holidays, e.g. 'Europe/London'."
    )
    always_open: bool = Field(default=False, description="Open around the clock (a 24/7 team).")
    hours: dict[Weekday, list[Interval]] = Field(default_factory=dict)
    holidays: list[date] = Field(default_factory=list)

    _hours: _OpenHours = PrivateAttr()

    @model_validator(mode="after")
    def _check_hours(self) -> BusinessCalendar:
        if self.always_open:
            if any(self.hours.values()):
                raise ValueError(
                    f"calendar {self.name!r} is always_open and cannot also list hours"
                )
        elif not any(self.hours.values()):
            raise ValueError(
                f"calendar {self.name!r} has no open hours: list some or set always_open"
            )
        else:
            _check_week(self.hours)
        return self

    def model_post_init(self, context: Any, /) -> None:
        if self.always_open:
            shifts: Shifts = tuple(((0, _MINUTES_PER_DAY),) for _ in _WEEKDAYS)
        else:
            shifts = tuple(
                tuple(sorted(_parse_interval(text) for text in self.hours.get(day, [])))
                for day in _WEEKDAYS
            )
        self._hours = _OpenHours(ZoneInfo(self.timezone), shifts, frozenset(self.holidays))

    @property
    def wall_time(self) -> bool:
        """Every instant is open, so business time is wall time."""
        return self.always_open and not self.holidays


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is UTC:  # the common case, and the conversion would return it as it is
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got the naive {value.isoformat()}")
    return value.astimezone(UTC)


def _local_to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    aware = local.replace(tzinfo=zone)
    utc = aware.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) == local:
        return utc
    after = utc.astimezone(zone).utcoffset()
    low = math.floor(aware.replace(fold=1).astimezone(UTC).timestamp())
    high = math.ceil(utc.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == after:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _open_hours(calendar: BusinessCalendar) -> _OpenHours:
    # The private dict itself: reading a private attribute through pydantic's __getattr__
    # costs more than a day's cached spans.
    private = calendar.__pydantic_private__
    assert private is not None
    hours: _OpenHours = private["_hours"]
    return hours


def _open_spans(
    calendar: BusinessCalendar, since: datetime, until: datetime | None = None
) -> Iterator[Span]:
    """The calendar's open spans in UTC, in order, that end after ``since``.

    Without ``until`` the spans go on for ever, and a run of more than ``SEARCH_LIMIT_DAYS``
    days with no open time raises ``ValueError``; with it they stop soon after ``until``.
    """
    hours = _open_hours(calendar)
    day = since.astimezone(hours.zone).date() - _ONE_DAY
    last = None if until is None else until.astimezone(hours.zone).date() + _ONE_DAY
    last_open = day
    while last is None or day <= last:
        spans = hours.spans(day)
        if spans:
            last_open = day
            for opens, closes in spans:
                if closes > since:
                    yield opens, closes
        elif last is None and (day - last_open).days > SEARCH_LIMIT_DAYS:
            raise ValueError(
                f"calendar {calendar.name!r} has no open time in the {SEARCH_LIMIT_DAYS} days"
                f" after {last_open.isoformat()}"
            )
        day += _ONE_DAY


def _business_duration(seconds: float) -> timedelta:
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"business time must be a finite number of seconds >= 0, got {seconds!r}")
    duration = timedelta(seconds=seconds)
    if duration.total_seconds() < seconds:
        duration += _ONE_MICROSECOND
    return duration


def is_open(calendar: BusinessCalendar, at: datetime) -> bool:
    """Whether the calendar is open at the instant ``at``."""
    at = _utc(at, "at")
    if calendar.wall_time:
        return True
    for opens, _ in _open_spans(calendar, at, until=at):
        return opens <= at
    return False


def next_open(calendar: BusinessCalendar, at: datetime) -> datetime:
    """The first open instant at or after ``at`` (``at`` itself when open), in UTC."""
    at = _utc(at, "at")
    if calendar.wall_time:
        return at
    for opens, _ in _open_spans(calendar, at):
        return max(opens, at)
    raise AssertionError("open spans never end")


def add_business_time(calendar: BusinessCalendar, start: datetime, seconds: float) -> datetime:
    """The earliest instant by which ``seconds`` of open time have passed since ``start``.

    Raises ``ValueError`` when the calendar has no open time for ``SEARCH_LIMIT_DAYS`` days.
    """
    start = _utc(start, "start")
    needed = _business_duration(seconds)
    if not needed or calendar.wall_time:
        return start + needed
    for opens, closes in _open_spans(calendar, start):
        cursor = max(opens, start)
        available = closes - cursor
        if needed <= available:
            return cursor + needed
        needed -= available
    raise AssertionError("open spans never end")


def business_seconds_between(calendar: BusinessCalendar, start: datetime, end: datetime) -> float:
    """Seconds of open time from ``start`` to ``end``; 0 when ``end`` is not after ``start``."""
    start, end = _utc(start, "start"), _utc(end, "end")
    if end <= start:
        return 0.0
    if calendar.wall_time:
        return (end - start).total_seconds()
    total = timedelta()
    for opens, closes in _open_spans(calendar, start, until=end):
        if opens >= end:
            break
        total += min(closes, end) - max(opens, start)
    return total.total_seconds()


def _to_timedelta(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"invalid duration {value!r}: {_DURATION_HELP}")
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip()
        match = _COMPACT_DURATION.fullmatch(text.lower())
        if match is not None and any(match[unit] for unit in _DURATION_UNITS):
            seconds = sum(float(match[unit] or 0) * size for unit, size in _DURATION_UNITS.items())
            return timedelta(seconds=-seconds if match["sign"] == "-" else seconds)
        if _ISO_DURATION.fullmatch(text):
            try:
                return _TIMEDELTA.validate_python(text)
            except ValidationError:
                pass
    raise ValueError(f"invalid duration {value!r}: {_DURATION_HELP}")


def _parse_duration(value: object) -> timedelta:
    duration = _to_timedelta(value)
    if duration <= timedelta():
        raise ValueError(f"duration must be positive, got {value!r}")
    return duration


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]


class SlaTarget(FrozenModel):
    """How long each step of a case may take, in business time; ``None`` sets no target."""

    first_response: Duration | None = None
    next_response: Duration | None = None
    resolution: Duration | None = None
    follow_up: Duration | None = Field(
        default=None, description="Time after resolution when a follow-up is due."
    )

    def for_metric(self, metric: SlaMetricName) -> timedelta | None:
        """The target of one metric."""
        target: timedelta | None = getattr(self, metric.value)
        return target


def _check_channel(key: str) -> str:
    if key != WILDCARD and key not in _CHANNELS:
        expected = ", ".join([*_CHANNELS, WILDCARD])
        raise ValueError(f"unknown channel {key!r}: expected one of {expected}")
    return key


def _check_priority(key: str) -> str:
    if key != WILDCARD and key not in PRIORITIES:
        raise ValueError(f"unknown priority {key!r}: expected one of {', '.join(PRIORITIES)}, *")
    return key


ChannelKey = Annotated[str, AfterValidator(_check_channel)]
PriorityKey = Annotated[str, AfterValidator(_check_priority)]


class SlaPolicy(FrozenModel):
    """Targets per channel and priority, and what to do when a clock warns or breaches."""

    warning_share: float = Field(
        default=0.8, gt=0, lt=1, description="Share of the target elapsed when the warning fires."
    )
    on_warning: list[SlaAction] = Field(default_factory=lambda: [SlaAction.NOTIFY])
    on_breach: list[SlaAction] = Field(
        default_factory=lambda: [SlaAction.ESCALATE, SlaAction.NOTIFY]
    )
    targets: dict[ChannelKey, dict[PriorityKey, SlaTarget]] = Field(
        description="Channel (or '*') to priority (or '*') to target."
    )
    review: Duration = Field(
        default=timedelta(minutes=30),
        description="How long a case held for review (a team with review policy `hold`) may "
        "wait for a supervisor's review, in business time.",
    )


class SlaConfig(FrozenModel):
    """The whole SLA configuration: the policy and the named business calendars."""

    policy: SlaPolicy
    calendars: dict[str, BusinessCalendar] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_names(self) -> SlaConfig:
        for key, calendar in self.calendars.items():
            if key != calendar.name:
                raise ValueError(f"calendar {calendar.name!r} is filed under the key {key!r}")
        return self


def target_for(policy: SlaPolicy, channel: str, priority: str) -> SlaTarget:
    """The target for a channel and priority, falling back to wildcards.

    The order is: exact, the channel with ``*``, ``*`` with the priority, then ``*`` with ``*``.
    Raises ``SlaTargetNotFound`` (an ``SlaConfigError`` and a ``KeyError``) when none matches.
    """
    for channel_key, priority_key in (
        (channel, priority),
        (channel, WILDCARD),
        (WILDCARD, priority),
        (WILDCARD, WILDCARD),
    ):
        target = policy.targets.get(channel_key, {}).get(priority_key)
        if target is not None:
            return target
    raise SlaTargetNotFound(
        f"no SLA target for channel {str(channel)!r} and priority {str(priority)!r}: add"
        f" targets.{channel}.{priority}, targets.{channel}.*, targets.*.{priority} or targets.*.*"
    )


def _describe(error: Mapping[str, Any], where: str) -> str:
    parts = [str(part) for part in error["loc"] if part != "[key]"]
    location = ".".join([where, *parts] if where else parts)
    if "[key]" in error["loc"]:
        location += " (key)"
    kind = error["type"]
    if kind == "extra_forbidden":
        message = "unknown key"
    elif kind == "missing":
        message = "required"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
        value = error.get("input")
        if kind != "value_error" and not isinstance(value, dict | list):
            message += f" (got {value!r})"
    return f"{location or 'top level'}: {message}"


def _explain(exc: ValidationError, where: str) -> list[str]:
    return [_describe(error, where) for error in exc.errors(include_url=False)]


def _read_yaml(text: str) -> dict[str, Any]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SlaConfigError(f"SLA configuration is not valid YAML: {exc}") from exc
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise SlaConfigError(
            f"SLA configuration must be a mapping at the top level, got {type(document).__name__}"
        )
    return document


def _policy_from(document: Mapping[str, Any]) -> tuple[SlaPolicy | None, list[str]]:
    fields = {key: value for key, value in document.items() if key != "calendars"}
    try:
        return SlaPolicy.model_validate(fields), []
    except ValidationError as exc:
        return None, _explain(exc, "")


def _calendars_from(section: object, where: str) -> tuple[dict[str, BusinessCalendar], list[str]]:
    if section is None:
        return {}, []
    if not isinstance(section, dict):
        kind = type(section).__name__
        return {}, [f"{where or 'top level'}: expected a mapping of name to calendar, got {kind}"]
    calendars: dict[str, BusinessCalendar] = {}
    problems: list[str] = []
    for key, body in section.items():
        name = str(key)
        here = f"{where}.{name}" if where else name
        if not isinstance(body, dict):
            problems.append(f"{here}: expected a mapping, got {type(body).__name__}")
        elif body.get("name", name) != name:
            problems.append(f"{here}.name: {body['name']!r} differs from the key {name!r}")
        else:
            try:
                calendars[name] = BusinessCalendar.model_validate({**body, "name": name})
            except ValidationError as exc:
                problems.extend(_explain(exc, here))
    return calendars, problems


def _config_error(problems: list[str]) -> SlaConfigError:
    return SlaConfigError("invalid SLA configuration: " + "; ".join(problems))


def load_policy(text: str) -> SlaPolicy:
    """The SLA policy in a YAML document; a ``calendars`` section there is left alone."""
    policy, problems = _policy_from(_read_yaml(text))
    if policy is None or problems:
        raise _config_error(problems)
    return policy


def load_calendars(text: str) -> dict[str, BusinessCalendar]:
    """The business calendars in a YAML document, by name.

    They are read from the document's ``calendars`` section, or from the whole document when
    it has none.
    """
    document = _read_yaml(text)
    if "calendars" in document:
        calendars, problems = _calendars_from(document["calendars"], "calendars")
    else:
        calendars, problems = _calendars_from(document, "")
    if problems:
        raise _config_error(problems)
    return calendars


def load_sla_config(text: str) -> SlaConfig:
    """The policy and the calendars of one YAML document (calendars under ``calendars``)."""
    document = _read_yaml(text)
    policy, policy_problems = _policy_from(document)
    calendars, calendar_problems = _calendars_from(document.get("calendars"), "calendars")
    if policy is None or calendar_problems or policy_problems:
        raise _config_error(calendar_problems + policy_problems)
    return SlaConfig(policy=policy, calendars=calendars)


class SlaClock(FrozenModel):
    """A service-level clock that counts business time and pauses while the customer owes a reply.

    Running: ``running_since`` is set. Paused: neither ``running_since`` nor ``stopped_at``.
    Stopped: ``stopped_at`` is set, and the clock never runs again.
    """

    metric: SlaMetricName
    target_seconds: float = Field(gt=0, allow_inf_nan=False, description="In business seconds.")
    started_at: UtcDatetime
    elapsed_before_pause: float = Field(
        default=0.0,
        ge=0,
        allow_inf_nan=False,
        description="Business seconds counted in earlier running spans.",
    )
    running_since: UtcDatetime | None = None
    stopped_at: UtcDatetime | None = None
    warned: bool = False
    breached: bool = False

    @model_validator(mode="after")
    def _check_state(self) -> SlaClock:
        if self.stopped_at is not None and self.running_since is not None:
            raise ValueError("a stopped clock cannot be running")
        return self

    @property
    def is_running(self) -> bool:
        """The clock is counting."""
        return self.running_since is not None

    @property
    def is_paused(self) -> bool:
        """The clock is waiting to be resumed."""
        return self.running_since is None and self.stopped_at is None

    @property
    def is_stopped(self) -> bool:
        """The clock has stopped for good."""
        return self.stopped_at is not None


def start_clock(metric: SlaMetricName, target_seconds: float, now: datetime) -> SlaClock:
    """A clock for ``metric`` that starts running at ``now``."""
    now = _utc(now, "now")
    return SlaClock(metric=metric, target_seconds=target_seconds, started_at=now, running_since=now)


def pause_clock(clock: SlaClock, calendar: BusinessCalendar, now: datetime) -> SlaClock:
    """The clock paused at ``now``, its business time so far banked; a no-op unless running."""
    now = _utc(now, "now")
    if clock.running_since is None:
        return clock
    spent = business_seconds_between(calendar, clock.running_since, now)
    return clock.model_copy(
        update={"elapsed_before_pause": clock.elapsed_before_pause + spent, "running_since": None}
    )


def resume_clock(clock: SlaClock, now: datetime) -> SlaClock:
    """The clock running again from ``now``; a no-op unless paused."""
    now = _utc(now, "now")
    if not clock.is_paused:
        return clock
    return clock.model_copy(update={"running_since": now})


def stop_clock(clock: SlaClock, calendar: BusinessCalendar, now: datetime) -> SlaClock:
    """The clock stopped for good at ``now``; a no-op when already stopped."""
    now = _utc(now, "now")
    if clock.is_stopped:
        return clock
    paused = pause_clock(clock, calendar, now)
    return paused.model_copy(update={"stopped_at": now})


def elapsed(clock: SlaClock, calendar: BusinessCalendar, now: datetime) -> float:
    """Business seconds the clock has counted by ``now``."""
    now = _utc(now, "now")
    if clock.running_since is None:
        return clock.elapsed_before_pause
    return clock.elapsed_before_pause + business_seconds_between(calendar, clock.running_since, now)


def remaining(clock: SlaClock, calendar: BusinessCalendar, now: datetime) -> float:
    """Business seconds left before the breach at ``now``; negative once breached."""
    return clock.target_seconds - elapsed(clock, calendar, now)


def _reached_at(clock: SlaClock, calendar: BusinessCalendar, threshold: float) -> datetime | None:
    if clock.running_since is None:
        return None
    left = max(0.0, threshold - clock.elapsed_before_pause)
    return add_business_time(calendar, clock.running_since, left)


def due_at(clock: SlaClock, calendar: BusinessCalendar) -> datetime | None:
    """When a running clock breaches (in the past once it has); ``None`` unless running."""
    return _reached_at(clock, calendar, clock.target_seconds)


def _check_share(warning_share: float) -> None:
    if not 0 < warning_share < 1:
        raise ValueError(f"warning_share must be between 0 and 1, got {warning_share!r}")


def warning_at(
    clock: SlaClock, calendar: BusinessCalendar, warning_share: float
) -> datetime | None:
    """When a running clock reaches ``warning_share`` of its target; ``None`` unless running."""
    _check_share(warning_share)
    return _reached_at(clock, calendar, clock.target_seconds * warning_share)


def met(clock: SlaClock) -> bool | None:
    """Whether a stopped clock kept within its target; ``None`` while it is not stopped."""
    if clock.stopped_at is None:
        return None
    return clock.elapsed_before_pause <= clock.target_seconds


def _reached(clock: SlaClock, calendar: BusinessCalendar, threshold: float, now: datetime) -> bool:
    instant = _reached_at(clock, calendar, threshold)
    if instant is None:
        return clock.elapsed_before_pause >= threshold
    return now >= instant


def due_events(
    clock: SlaClock, calendar: BusinessCalendar, warning_share: float, now: datetime
) -> list[SlaEvent]:
    """The warning and breach due at ``now`` that the clock has not yet recorded as fired.

    Calling it again, or after a restart, repeats nothing once each event fired has been
    recorded with ``mark_fired``. A stopped clock has nothing due, and the warning is not due
    once the breach has fired.
    """
    _check_share(warning_share)
    now = _utc(now, "now")
    if clock.stopped_at is not None:
        return []
    events: list[SlaEvent] = []
    target = clock.target_seconds
    if not (clock.warned or clock.breached) and _reached(
        clock, calendar, target * warning_share, now
    ):
        events.append("warning")
    if not clock.breached and _reached(clock, calendar, target, now):
        events.append("breach")
    return events


def mark_fired(clock: SlaClock, kind: SlaEvent) -> SlaClock:
    """The clock with the event recorded as fired, so that it is not due again."""
    if kind == "warning":
        return clock.model_copy(update={"warned": True})
    if kind == "breach":
        return clock.model_copy(update={"breached": True})
    raise ValueError(f"unknown SLA event {kind!r}: expected 'warning' or 'breach'")
