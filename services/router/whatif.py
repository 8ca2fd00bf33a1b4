"""What-if staffing: replay a recorded period's arrivals under a changed roster or policy.

A period is recorded on ``cases.events``: every change of every case, each event carrying the
case as it was after the change. From the events of the cases opened in the period this module
rebuilds

* the arrivals: each customer message as the router took it in (the event that brought it:
  ``created``, ``message_added`` or ``reopened``, and when), rebuilt as the classified message
  the engine needs, with the time its agent worked it (``assigned`` to ``resolved``);
* what happened: the cases as they last were, the assignments, the queues over time and how
  busy each agent was;

runs the arrivals through the engine with simulated agents (:mod:`services.router.simulation`)
under the recorded roster and policy and under the changed ones, and sums up each run the same
way: attainment per team and service level, breaches, queue waits and agent utilisation.

What a recorded case cannot give back, and what the replay does instead:

* message texts are excerpts (routing does not read them) and at most the newest 20 messages
  of a case are on its events; a message dropped from a long case is not replayed;
* thread references are kept only hashed: a later message of a case is replayed as a reply to
  its first message, so it joins (or reopens) that case, as it did;
* facts and customer history are the case's (those of its first message): later messages are
  replayed with no facts (routing reads only the first message's), and as from a repeat
  complainer only where the case's score components show that they were;
* the tags are the classifier's, as the router received them: a supervisor's relabelling, and
  agents' other commands (transfers, escalations, waits on the customer), are not replayed:
  simulated agents accept, answer and resolve;
* the handling time is the resolving agent's (their last ``assigned`` to ``resolved``, waits on
  the customer included); a case not resolved in the recording gets one drawn around the
  median of its category's observed times.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from services.common.cases import (
    Case,
    CaseEvent,
    CaseEventType,
    CaseMessage,
    CaseState,
    SlaMetricName,
)
from services.common.errors import TriageError
from services.common.kafka import BrokerUnreachable, KafkaSettings, topic_reader
from services.common.messages import (
    Category,
    Customer,
    Facts,
    FeedbackClassified,
    FeedbackReceived,
    SocialDetails,
    SocialKind,
    Source,
    Thread,
)
from services.common.topics import cases_events
from services.router.engine import EngineSettings
from services.router.roster import Roster
from services.router.simulation import Arrival, HandlingModel, SimulationResult, simulate
from services.router.sla import SlaConfig

#: The events that bring a customer's message into the router.
ARRIVING = frozenset({CaseEventType.CREATED, CaseEventType.MESSAGE_ADDED, CaseEventType.REOPENED})
#: The events that start a spell of work on a case (the handling time is counted per spell).
OPENING = frozenset({CaseEventType.CREATED, CaseEventType.REOPENED})
RECORDED_MODEL = "recorded"
#: Service levels of steps simulated agents do not take (by name: a follow-up after the
#: resolution, a supervisor's review of a case held for it).
NOT_SIMULATED = frozenset({"follow_up", "review"})
#: A message is replayed with its recorded text; an empty one (never on a real case) gets this.
NO_TEXT = "(text not recorded)"
#: When no case of the recording was resolved, the handling time simulated agents take.
DEFAULT_HANDLING_S = 600.0
#: How soon simulated agents answer a case, when the recording has no answer to learn it from.
DEFAULT_RESPOND_AFTER = timedelta(seconds=45)
#: How long a replay goes on after the last arrival, for the cases in hand to be worked: four
#: times the longest resolution target, within these bounds.
DRAIN_BOUNDS = (timedelta(hours=1), timedelta(hours=8))
#: How often a replay's clock ticks: a tenth of the shortest target, within these bounds.
TICK_BOUNDS = (timedelta(seconds=1), timedelta(seconds=30))
#: Record timestamps are the worker's clock when it published, at or after the event: the
#: topic is read from this long before the period's start (the clocks' skew), and a partition
#: is read until an event this long after the period's end.
TOPIC_MARGIN = timedelta(minutes=5)


class WhatIfError(TriageError):
    """The recording cannot be read or replayed."""


# --------------------------------------------------------------------------- the recording


@dataclass(frozen=True)
class Recording:
    """The events of the cases opened in a period, in order (by time, then case version).

    ``unreadable``: records or lines that were not case events; ``incomplete``: cases seen
    whose opening was not in the recording (opened before it), left out."""

    events: list[CaseEvent]
    since: datetime | None = None
    until: datetime | None = None
    unreadable: int = 0
    incomplete: int = 0

    @property
    def cases(self) -> int:
        return len({event.case_id for event in self.events})


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def select_period(
    events: Iterable[CaseEvent],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    unreadable: int = 0,
) -> Recording:
    """The recording of the cases opened in ``[since, until)``: their events before ``until``,
    each once (a republished event is a repeat), ordered by time and case version."""
    since = _utc(since) if since is not None else None
    until = _utc(until) if until is not None else None
    unique: dict[uuid.UUID, CaseEvent] = {}
    for event in events:
        unique.setdefault(event.event_id, event)
    opened = {
        e.case_id
        for e in unique.values()
        if e.type == CaseEventType.CREATED
        and (since is None or e.at >= since)
        and (until is None or e.at < until)
    }
    created = {e.case_id for e in unique.values() if e.type == CaseEventType.CREATED}
    within = {
        e.case_id
        for e in unique.values()
        if (since is None or e.at >= since) and (until is None or e.at < until)
    }
    kept = [e for e in unique.values() if e.case_id in opened and (until is None or e.at < until)]
    kept.sort(key=lambda e: (e.at, str(e.case_id), e.version))
    return Recording(
        events=kept,
        since=since,
        until=until,
        unreadable=unreadable,
        incomplete=len(within - created),
    )


def parse_events(lines: Iterable[str | bytes]) -> tuple[list[CaseEvent], int]:
    """Case events from JSON lines (blank lines skipped), and how many lines were not one."""
    events: list[CaseEvent] = []
    unreadable = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            events.append(CaseEvent.model_validate_json(line))
        except ValidationError:
            unreadable += 1
    return events, unreadable


def read_file(
    path: Path, *, since: datetime | None = None, until: datetime | None = None
) -> Recording:
    """The recording of a period from a JSONL file of case events (``triage whatif export``)."""
    try:
        with path.open("rb") as handle:
            events, unreadable = parse_events(handle)
    except OSError as exc:
        raise WhatIfError(f"cannot read {path}: {exc.strerror}") from None
    return select_period(events, since=since, until=until, unreadable=unreadable)


def write_events(recording: Recording, sink: IO[str]) -> int:
    """Write the recording's events as JSON lines; how many were written."""
    for event in recording.events:
        sink.write(event.model_dump_json() + "\n")
    return len(recording.events)


async def read_topic(
    kafka: KafkaSettings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    timeout_s: float = 60.0,
) -> Recording:
    """The recording of a period from ``cases.events``: read from the period's start (by record
    time) up to the end offsets as of now, so what is published meanwhile is not waited for,
    or to the period's end. ``timeout_s``: the longest the broker may give nothing."""
    topic = kafka.topic(cases_events)
    events: list[CaseEvent] = []
    unreadable = 0
    try:
        async with topic_reader(kafka, topic, timeout_s=timeout_s) as (consumer, partitions):
            if not partitions:
                raise WhatIfError(f"topic {topic} does not exist on {kafka.bootstrap}")
            ends = await consumer.end_offsets(partitions)
            await _seek_to_start(consumer, partitions, since)
            # A partition is read to its end as of now, or until its events are past the
            # period: the router publishes them in the order of its inbox, whatever its lag,
            # so their times grow along a partition (up to the skew between the inbox's
            # senders).
            past = _utc(until) + TOPIC_MARGIN if until else None
            done: set[TopicPartition] = set()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            while [
                tp for tp in partitions if tp not in done and await consumer.position(tp) < ends[tp]
            ]:
                if loop.time() > deadline:
                    raise WhatIfError(f"{topic} gave nothing for {timeout_s:g} s")
                batch = await consumer.getmany(timeout_ms=500)
                for tp, records in batch.items():
                    if records:
                        deadline = loop.time() + timeout_s
                    for record in records:
                        if record.offset >= ends[tp]:
                            break
                        try:
                            event = CaseEvent.model_validate_json(record.value or b"")
                        except ValidationError:
                            unreadable += 1
                            continue
                        if past is not None and event.at >= past:
                            done.add(tp)
                            consumer.pause(tp)
                            break
                        events.append(event)
    except BrokerUnreachable as exc:
        raise WhatIfError(str(exc)) from exc
    return select_period(events, since=since, until=until, unreadable=unreadable)


async def _seek_to_start(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], since: datetime | None
) -> None:
    if since is None:
        await consumer.seek_to_beginning(*partitions)
        return
    start_ms = int((_utc(since) - TOPIC_MARGIN).timestamp() * 1000)
    found = await consumer.offsets_for_times({tp: start_ms for tp in partitions})
    for tp in partitions:
        position = found.get(tp)
        if position is None:  # nothing that recent: only what comes after now, which is not read
            await consumer.seek_to_end(tp)
        else:
            consumer.seek(tp, position.offset)


# --------------------------------------------------------------------------- arrivals


def _thread_id(case_id: uuid.UUID) -> str:
    return f"<{case_id}@whatif>"


def rebuild_feedback(
    case: Case, message: CaseMessage, *, first: bool, repeat: bool | None = None
) -> FeedbackClassified:
    """The classified message the router took in, as far as the case keeps it: the same event
    id (so the same case id), tags, score, customer and reach; the case's facts and history on
    its first message; a later message as a reply to the first, so it joins that case, with
    the case's history but ``repeat`` for whether the customer counted as a repeat
    complainer (the history of a later message is not kept)."""
    platform = case.platform or RECORDED_MODEL
    social = None
    if message.public or message.reach is not None:
        social = SocialDetails(
            network=platform[:64],
            kind=SocialKind.POST,
            handle=case.customer_id[:256],
            public=message.public,
            reach=message.reach,
        )
    thread = (
        Thread(message_id=_thread_id(case.case_id))
        if first
        else Thread(in_reply_to=_thread_id(case.case_id))
    )
    received = FeedbackReceived(
        event_id=message.event_id,
        source=Source(platform=platform, event_id=str(message.event_id)),
        channel=message.channel,
        customer=Customer(id=case.customer_id, tier=case.customer_tier, language=case.language),
        subject=message.subject,
        text=message.text or NO_TEXT,
        thread=thread,
        received_at=message.received_at,
        social=social,
    )
    facts = case.facts.model_copy(update={"language": case.language}) if first else Facts()
    history = case.history
    if repeat is not None:
        history = history.model_copy(update={"repeat_complainer": repeat})
    return FeedbackClassified(
        event_id=message.event_id,
        feedback=received,
        sentiment=message.sentiment,
        sentiment_score=message.sentiment_score,
        category=message.category,
        difficult=message.difficult,
        needs_review=message.needs_review,
        facts=facts,
        history=history,
        model_version=RECORDED_MODEL,
        classified_at=message.received_at,
    )


def _by_case(events: Iterable[CaseEvent]) -> dict[uuid.UUID, list[CaseEvent]]:
    cases: dict[uuid.UUID, list[CaseEvent]] = defaultdict(list)
    for event in events:
        cases[event.case_id].append(event)
    for history in cases.values():
        history.sort(key=lambda e: e.version)
    return cases


def _spells(history: Sequence[CaseEvent]) -> list[float | None]:
    """Per spell of work (the opening and each reopening), the resolving agent's handling
    time: their last assignment to the resolution; None for a spell not resolved."""
    spells: list[float | None] = []
    assigned: datetime | None = None
    for event in history:
        if event.type in OPENING:
            spells.append(None)
            assigned = None
        elif event.type == CaseEventType.ASSIGNED:
            assigned = event.at
        elif event.type == CaseEventType.RESOLVED and spells and assigned is not None:
            spells[-1] = max(0.0, (event.at - assigned).total_seconds())
            assigned = None
    return spells


def arrivals_of(recording: Recording) -> list[Arrival]:
    """Every customer message of the recording, at the time the router took it in, with the
    observed handling time on the message that opened (or reopened) each spell of work."""
    arrivals: list[Arrival] = []
    for history in _by_case(recording.events).values():
        spells = iter(_spells(history))
        known: set[uuid.UUID] = set()
        score: float | None = None
        for event in history:
            case = event.case
            if event.type in ARRIVING:
                handling = next(spells, None) if event.type in OPENING else None
                # A later message raised the score only with its own terms: then the case's
                # components tell whether it counted the customer as a repeat complainer.
                raised = score is not None and case.priority_score > score
                repeat = raised and any(c.name == "repeat" for c in case.priority_components)
                new = [m for m in case.messages if m.event_id not in known]
                for message in new:
                    first = event.type == CaseEventType.CREATED and message is new[0]
                    feedback = rebuild_feedback(
                        case, message, first=first, repeat=None if first else repeat
                    )
                    handling_s = handling if message is new[-1] else None
                    arrivals.append(Arrival(at=event.at, feedback=feedback, handling_s=handling_s))
            known.update(m.event_id for m in case.messages)
            score = case.priority_score
    arrivals.sort(key=lambda a: a.at)
    return arrivals


def respond_after(recording: Recording) -> timedelta:
    """How soon simulated agents answer a case they accept: the median time from an
    assignment to the agent's first reply in the recording."""
    delays: list[float] = []
    for history in _by_case(recording.events).values():
        assigned: datetime | None = None
        for event in history:
            if event.type == CaseEventType.ASSIGNED:
                assigned = event.at
            elif event.type == CaseEventType.RESPONDED and assigned is not None:
                delays.append((event.at - assigned).total_seconds())
                assigned = None
    if not delays:
        return DEFAULT_RESPOND_AFTER
    return timedelta(seconds=statistics.median(delays))


def handling_model(arrivals: Sequence[Arrival], *, seed: int = 0) -> HandlingModel:
    """Handling times for cases the recording did not see resolved: the observed median of
    their category (of all categories where the category has none)."""
    observed: dict[Category, list[float]] = defaultdict(list)
    for arrival in arrivals:
        if arrival.handling_s is not None:
            observed[Category(arrival.feedback.category.label)].append(arrival.handling_s)
    every = [s for times in observed.values() for s in times]
    overall = statistics.median(every) if every else DEFAULT_HANDLING_S
    medians = {c: statistics.median(observed[c]) if observed[c] else overall for c in Category}
    return HandlingModel(median_s={c: max(m, 1.0) for c, m in medians.items()}, seed=seed)


# --------------------------------------------------------------------------- summaries


@dataclass(frozen=True)
class Attained:
    """Clocks of one team and service level that ran out or stopped: how many were met."""

    met: int = 0
    decided: int = 0

    @property
    def share(self) -> float | None:
        return self.met / self.decided if self.decided else None


@dataclass(frozen=True)
class RunSummary:
    """One run (what happened, or a replay) summed up the same way."""

    label: str
    cases: int
    attainment: dict[tuple[str, SlaMetricName], Attained]
    breaches: int
    waits_s: list[float]
    unassigned: int
    utilisation: dict[str, float]
    still_open: int = 0
    attainment_over_time: list[tuple[datetime, float]] = field(default_factory=list)
    depth_over_time: list[tuple[datetime, int]] = field(default_factory=list)

    def wait_percentile(self, q: float) -> float | None:
        return percentile(self.waits_s, q)

    @property
    def overall(self) -> Attained:
        return Attained(
            met=sum(a.met for a in self.attainment.values()),
            decided=sum(a.decided for a in self.attainment.values()),
        )


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by linear interpolation between ranks; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _decided(
    case: Case, as_of: datetime | None = None
) -> Iterable[tuple[SlaMetricName, datetime, bool]]:
    """Each clock of the case that is decided: when, and whether it was met. A clock stops
    when its step is done (met or late); a running one is decided once it breached, or once it
    is past due ``as_of`` the end of a recording (the step was not done in time, whether or
    not the router had fired the breach yet). Follow-ups and supervisors' reviews are left
    out: simulated agents do neither, so a replay could only breach them."""
    for deadline in case.deadlines:
        if deadline.metric in NOT_SIMULATED:
            continue
        if deadline.stopped_at is not None:
            yield deadline.metric, deadline.stopped_at, not deadline.breached
        elif deadline.due_at is not None and (
            deadline.breached or (as_of is not None and deadline.due_at <= as_of)
        ):
            yield deadline.metric, deadline.due_at, False


def summarise(
    label: str,
    cases: Sequence[Case],
    assignments: Sequence[tuple[datetime, uuid.UUID, str]],
    queue_depth: Sequence[tuple[datetime, Mapping[str, int]]],
    utilisation: Mapping[str, float],
    *,
    as_of: datetime | None = None,
) -> RunSummary:
    """A run's figures from its cases as they ended, its assignments and queues.

    Attainment counts the latest clock of each service level of each case (a next-response
    clock restarts with each customer reply; a breach of an earlier one is not counted);
    a queue wait is from a case's opening to its first assignment. ``as_of``: the end of a
    recording, for clocks still running then."""
    attained: dict[tuple[str, SlaMetricName], list[int]] = defaultdict(lambda: [0, 0])
    timeline: list[tuple[datetime, bool]] = []
    breaches = 0
    for case in cases:
        for metric, at, met in _decided(case, as_of):
            counts = attained[(case.team, metric)]
            counts[0] += met
            counts[1] += 1
            breaches += not met
            timeline.append((at, met))
    first_assigned: dict[uuid.UUID, datetime] = {}
    for at, case_id, _ in assignments:
        first_assigned.setdefault(case_id, at)
    waits = [
        max(0.0, (first_assigned[c.case_id] - c.created_at).total_seconds())
        for c in cases
        if c.case_id in first_assigned
    ]
    timeline.sort(key=lambda item: item[0])
    over_time: list[tuple[datetime, float]] = []
    met_so_far = 0
    for n, (at, met) in enumerate(timeline, start=1):
        met_so_far += met
        over_time.append((at, met_so_far / n))
    return RunSummary(
        label=label,
        cases=len(cases),
        attainment={key: Attained(met=v[0], decided=v[1]) for key, v in attained.items()},
        breaches=breaches,
        waits_s=waits,
        unassigned=len(cases) - len(waits),
        still_open=sum(case.is_open for case in cases),
        utilisation=dict(utilisation),
        attainment_over_time=over_time,
        depth_over_time=[(at, sum(depth.values())) for at, depth in queue_depth],
    )


def summarise_simulation(
    label: str, result: SimulationResult, *, as_of: datetime | None = None
) -> RunSummary:
    """A run summed up."""
    return summarise(
        label,
        result.cases,
        result.assignments,
        result.queue_depth,
        result.utilisation,
        as_of=as_of,
    )


def _holder(case: Case) -> str | None:
    """Who holds an open case (an offer or an assignment counts on the agent's load)."""
    if not case.is_open:
        return None
    if case.state == CaseState.OFFERED and case.offer is not None:
        return case.offer.agent_id
    return case.assignee


def period_of(recording: Recording) -> tuple[datetime, datetime]:
    """The period a recording covers: as asked, or from its first customer message to its
    last."""
    arrived = [e.at for e in recording.events if e.type in ARRIVING]
    start = recording.since or min(arrived, default=recording.events[0].at)
    end = recording.until or max(arrived, default=recording.events[-1].at)
    return start, max(end, start + timedelta(seconds=1))


def _worked_until(cases: Iterable[Case], end: datetime) -> datetime:
    """The end of the time a run's utilisation is counted over: the period's end, or the last
    resolution if later (work on the period's cases goes on after their last message)."""
    return max([end, *(c.resolved_at for c in cases if c.resolved_at is not None)])


def _over_period(
    result: SimulationResult,
    arrivals: Sequence[Arrival],
    period: tuple[datetime, datetime],
    drain: timedelta,
) -> SimulationResult:
    """A replay's utilisation counted as the recording's is: the capacity in use from the
    period's start until its end or the last resolution. The replay counts it over its agents'
    available time, which for its agents (available throughout) is from the first arrival to
    the end of the drain after the last."""
    if not arrivals:
        return result
    first, last = min(a.at for a in arrivals), max(a.at for a in arrivals)
    simulated = (last + drain - first).total_seconds()
    span = (_worked_until(result.cases, period[1]) - period[0]).total_seconds()
    return replace(
        result,
        utilisation={a: share * simulated / span for a, share in result.utilisation.items()},
    )


def recorded_run(
    recording: Recording, roster: Roster, settings: EngineSettings
) -> SimulationResult:
    """What happened, in the shape of a replay's result: the cases as they last were, the
    assignments, the queues after every change, and each agent's utilisation as a replay
    counts it (the time-average of the share of their capacity in use), over the whole period:
    presence is not on ``cases.events``, so the time an agent was away is not told apart."""
    capacity = {a.id: sum(a.channels.values()) for a in roster.agents}
    hostile_weight = settings.hostile_weight
    last: dict[uuid.UUID, Case] = {}
    placed: dict[uuid.UUID, tuple[str, CaseState]] = {}
    held: dict[uuid.UUID, tuple[str, float]] = {}
    queued: dict[str, int] = defaultdict(int)
    depth: list[tuple[datetime, dict[str, int]]] = []
    assignments: list[tuple[datetime, uuid.UUID, str]] = []
    load: dict[str, float] = defaultdict(float)
    used: dict[str, float] = defaultdict(float)  # capacity-seconds in use
    if not recording.events:
        return SimulationResult(cases=[], assignments=[], queue_depth=[], utilisation={})
    start, end = period_of(recording)
    end = _worked_until((e.case for e in recording.events), end)
    clock = start

    def advance(to: datetime) -> None:
        nonlocal clock
        span = (min(to, end) - clock).total_seconds()
        if span > 0:
            for agent, amount in load.items():
                used[agent] += amount * span
            clock = min(to, end)

    for event in recording.events:
        advance(event.at)
        case = event.case
        last[case.case_id] = case
        if event.type == CaseEventType.ASSIGNED and case.assignee is not None:
            assignments.append((event.at, case.case_id, case.assignee))
        holder = _holder(case)
        before_held = held.pop(case.case_id, None)
        if before_held is not None:
            load[before_held[0]] -= before_held[1]
        if holder is not None:
            weight = (
                before_held[1]
                if before_held and before_held[0] == holder
                else (hostile_weight if case.hostile else 1.0)
            )
            held[case.case_id] = (holder, weight)
            load[holder] += weight
        before = placed.get(case.case_id)
        now = (case.team, case.state)
        placed[case.case_id] = now
        if before != now:
            if before is not None and before[1] == CaseState.QUEUED:
                queued[before[0]] -= 1
            if now[1] == CaseState.QUEUED:
                queued[now[0]] += 1
            sample = (event.at, {team: n for team, n in queued.items() if n})
            if depth and depth[-1][0] == event.at:  # one change of several at one instant
                depth[-1] = sample
            else:
                depth.append(sample)
    advance(end)
    span = max((end - start).total_seconds(), 1.0)
    return SimulationResult(
        cases=sorted(last.values(), key=lambda c: (c.created_at, str(c.case_id))),
        assignments=assignments,
        queue_depth=depth,
        utilisation={
            agent: seconds / span / capacity[agent]
            for agent, seconds in sorted(used.items())
            if capacity.get(agent)
        },
    )


# --------------------------------------------------------------------------- the what-if


@dataclass(frozen=True)
class WhatIf:
    """What happened and the two replays, summed up the same way."""

    recorded: RunSummary
    baseline: RunSummary
    changed: RunSummary
    arrivals: int
    baseline_result: SimulationResult
    changed_result: SimulationResult


@dataclass(frozen=True)
class ReplayClock:
    """How a replay's clock runs: its ticks fire deadlines about when the router's timer
    would, and it goes on after the last arrival until the work in hand is done."""

    tick: timedelta
    drain: timedelta


def replay_clock(*configs: SlaConfig) -> ReplayClock:
    """The clock of replays under these policies (minutes-long demo targets need ticks of
    seconds; the shipped policy's ticks of 30 s)."""
    targets = [
        target
        for config in configs
        for by_priority in config.policy.targets.values()
        for target in by_priority.values()
    ]
    steps = [
        step
        for target in targets
        for step in (target.first_response, target.next_response, target.resolution)
        if step is not None and step > timedelta(0)
    ]
    resolutions = [t.resolution for t in targets if t.resolution is not None]
    tick = min(steps, default=TICK_BOUNDS[1] * 10) / 10
    drain = max(resolutions, default=DRAIN_BOUNDS[1]) * 4
    return ReplayClock(
        tick=min(max(tick, TICK_BOUNDS[0]), TICK_BOUNDS[1]),
        drain=min(max(drain, DRAIN_BOUNDS[0]), DRAIN_BOUNDS[1]),
    )


def _replay(
    arrivals: Sequence[Arrival],
    roster: Roster,
    config: SlaConfig,
    settings: EngineSettings,
    handling: HandlingModel,
    respond_after: timedelta,
    clock: ReplayClock,
) -> SimulationResult:
    return simulate(
        arrivals,
        roster,
        config,
        settings,
        handling,
        tick=clock.tick,
        drain=clock.drain,
        respond_after=respond_after,
    )


def what_if(
    recording: Recording,
    *,
    roster: Roster,
    config: SlaConfig,
    new_roster: Roster,
    new_config: SlaConfig,
    settings: EngineSettings,
    seed: int = 0,
    parallel: bool = False,
) -> WhatIf:
    """Replay the recording's arrivals with simulated agents under the recorded roster and
    policy, and under the changed ones, each case worked as long as it was.

    ``parallel``: the two replays run side by side in two processes (forked, so nothing is
    imported again), which halves the wait for a long period where two cores are free."""
    arrivals = arrivals_of(recording)
    handling = handling_model(arrivals, seed=seed)
    reply = respond_after(recording)
    clock = replay_clock(config, new_config)
    runs = ((roster, config), (new_roster, new_config))
    if parallel and multiprocessing.get_all_start_methods()[0] == "fork":
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
            futures = [
                pool.submit(_replay, arrivals, r, c, settings, handling, reply, clock)
                for r, c in runs
            ]
            baseline, changed = (future.result() for future in futures)
    else:
        baseline, changed = (
            _replay(arrivals, r, c, settings, handling, reply, clock) for r, c in runs
        )
    period = period_of(recording)
    recorded = recorded_run(recording, roster, settings)
    return WhatIf(
        recorded=summarise_simulation(
            "recorded", recorded, as_of=recording.until or recording.events[-1].at
        ),
        baseline=summarise_simulation(
            "replay, recorded roster", _over_period(baseline, arrivals, period, clock.drain)
        ),
        changed=summarise_simulation(
            "replay, new roster", _over_period(changed, arrivals, period, clock.drain)
        ),
        arrivals=len(arrivals),
        baseline_result=baseline,
        changed_result=changed,
    )


def plot(result: WhatIf, path: Path) -> None:
    """Attainment (all service levels, cumulative) and queue depth (all teams) over time,
    for what happened and both replays, as an image. Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = (result.recorded, result.baseline, result.changed)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    for run in runs:
        if run.attainment_over_time:
            times, shares = zip(*run.attainment_over_time, strict=True)
            top.plot(times, [100 * s for s in shares], label=run.label)
        if run.depth_over_time:
            times_d, depths = zip(*run.depth_over_time, strict=True)
            bottom.step(times_d, depths, where="post", label=run.label)
    # The replays go on with their clock ticks long after the last case is decided.
    ends = [run.attainment_over_time[-1][0] for run in runs if run.attainment_over_time]
    ends += [run.depth_over_time[0][0] for run in runs if run.depth_over_time]
    if result.recorded.depth_over_time:
        ends.append(result.recorded.depth_over_time[-1][0])
    starts = [run.depth_over_time[0][0] for run in runs if run.depth_over_time]
    if starts and ends:
        top.set_xlim(min(starts), max(ends))
    top.set_ylabel("attainment so far (%)")
    top.set_ylim(0, 101)
    top.legend(loc="lower left")
    top.grid(alpha=0.3)
    bottom.set_ylabel("cases waiting")
    bottom.set_xlabel("time (UTC)")
    bottom.grid(alpha=0.3)
    figure.suptitle("What-if staffing")
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
