"""A discrete-event run of the router's engine on a simulated clock, with simulated agents.

:func:`simulate` feeds the pure :class:`~services.router.engine.Engine` the same inbox messages
the worker does (``ClassifiedIn`` for each arrival, ``Command`` for each agent's action,
``Tick`` for the clock) and touches none of its internals. Every agent of the roster marked
available accepts an offer at once, sends a first reply a short fixed time later and resolves
the case after its handling time; the engine then offers them their next case as it does for
real agents. It is deterministic: the same arrivals, roster, policy, settings and handling
model give the same result.

Used by ``bench/sla_policy.py`` (queue orderings compared on one trace) and ``triage whatif``
(a recorded period replayed under another roster or policy).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.common.cases import AgentTier, Case, CaseEventType, Presence, case_id_for
from services.common.messages import Category, FeedbackClassified
from services.router.commands import COMMAND_TYPES, Action, ClassifiedIn, Inbound, Labels, Tick
from services.router.engine import Engine, EngineSettings, Outcome
from services.router.roster import Roster
from services.router.sla import SlaConfig

# Command ids are derived from a counter, so a run is reproducible to the byte.
_COMMANDS = uuid.UUID("5a1e0c7e-2f4b-4c39-8d0e-6b1f3a9c2d57")


@dataclass(frozen=True)
class Arrival:
    """One customer message entering the router."""

    at: datetime
    feedback: FeedbackClassified
    handling_s: float | None = None
    """How long an agent works the case it opens once accepted (None: drawn from the
    :class:`HandlingModel`)."""


@dataclass(frozen=True)
class HandlingModel:
    """Seconds an agent needs per case, by category: lognormal around a median, seeded."""

    median_s: Mapping[Category, float]
    sigma: float = 0.5
    seed: int = 0
    default_s: float = 600.0
    """The median of a category not in ``median_s``."""

    def draw(self, case: Case, rng: random.Random) -> float:
        median = self.median_s.get(case.category, self.default_s)
        return median * math.exp(self.sigma * rng.gauss(0.0, 1.0))


@dataclass(frozen=True)
class SimulationResult:
    """What a run did."""

    cases: list[Case]
    """Every case as it ended (resolved or still open), in order of creation."""
    assignments: list[tuple[datetime, uuid.UUID, str]]
    """(at, case id, agent id) of every assignment, in order."""
    queue_depth: list[tuple[datetime, dict[str, int]]]
    """Cases waiting per team, sampled at every clock tick."""
    utilisation: dict[str, float]
    """Agent id -> busy share of their available time: the time-average of the share of their
    capacity in use, over the time they were available."""
    events: dict[str, int] = field(default_factory=dict)
    """How many case events of each type the run caused."""


@dataclass(frozen=True, slots=True)
class _Act:
    """An agent's action due: ``turn`` is the assignment it belongs to (-1: an offer)."""

    action: Action
    case_id: uuid.UUID | None
    agent_id: str
    turn: int
    presence: Presence | None = None


@dataclass
class _Floor:
    """The simulated agents' pending actions and what the run records."""

    engine: Engine
    handling: HandlingModel
    respond_after: timedelta
    rng: random.Random
    handling_of: dict[uuid.UUID, float]
    pending: list[tuple[datetime, int, Arrival | _Act]] = field(default_factory=list)
    seq: itertools.count[int] = field(default_factory=itertools.count)
    commands: itertools.count[int] = field(default_factory=itertools.count)
    # The current assignment of each case: actions of an earlier one are dropped.
    holder: dict[uuid.UUID, tuple[str, int]] = field(default_factory=dict)
    seen: dict[uuid.UUID, None] = field(default_factory=dict)
    assignments: list[tuple[datetime, uuid.UUID, str]] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=dict)
    # Per agent: (time of the last change, share in use since then, busy seconds, available s).
    busy: dict[str, list[float]] = field(default_factory=dict)
    # The supervisor who confirms the tags of cases held for review, after ``review_after``.
    reviewer: str | None = None
    review_after: timedelta | None = None
    reviewing: set[uuid.UUID] = field(default_factory=set)

    def at(self, when: datetime, item: Arrival | _Act) -> None:
        heapq.heappush(self.pending, (when, next(self.seq), item))

    def apply(self, message: Inbound, now: datetime) -> Outcome:
        out = self.engine.apply(message, now)
        for event in out.events:
            kind = event.type
            self.events[kind.value] = self.events.get(kind.value, 0) + 1
            case_id = event.case_id
            self.seen.setdefault(case_id, None)
            review = event.case.review
            if (
                review is not None
                and review.hold
                and review.status == "pending"
                and self.reviewer is not None
                and self.review_after is not None
                and case_id not in self.reviewing
            ):
                self.reviewing.add(case_id)
                self.at(now + self.review_after, _Act(Action.RELABEL, case_id, self.reviewer, -1))
            if kind == CaseEventType.CREATED:
                if case_id not in self.handling_of:
                    self.handling_of[case_id] = self.handling.draw(event.case, self.rng)
            elif kind == CaseEventType.OFFERED and event.agent_id:
                self.at(now, _Act(Action.ACCEPT, case_id, event.agent_id, -1))
            elif kind == CaseEventType.MESSAGE_ADDED and case_id in self.holder:
                # The customer wrote again: the agent working the case answers.
                agent_id, turn = self.holder[case_id]
                self.at(now + self.respond_after, _Act(Action.RESPOND, case_id, agent_id, turn))
            elif kind == CaseEventType.ASSIGNED and event.agent_id:
                turn = next(self.seq)
                self.holder[case_id] = (event.agent_id, turn)
                self.assignments.append((now, case_id, event.agent_id))
                work = timedelta(seconds=self.handling_of.get(case_id, self.handling.default_s))
                self.at(
                    now + self.respond_after, _Act(Action.RESPOND, case_id, event.agent_id, turn)
                )
                self.at(
                    now + max(work, self.respond_after),
                    _Act(Action.RESOLVE, case_id, event.agent_id, turn),
                )
        self._track(out.agents, now)
        return out

    def _track(self, agents: set[str], now: datetime) -> None:
        t = now.timestamp()
        for agent_id in agents:
            state = self.engine.agents.get(agent_id)
            entry = self.busy.setdefault(agent_id, [t, 0.0, 0.0, 0.0])
            self._advance(entry, t)
            available = state is not None and state.presence == Presence.AVAILABLE
            entry[1] = state.utilisation if available and state is not None else -1.0

    @staticmethod
    def _advance(entry: list[float], t: float) -> None:
        span = t - entry[0]
        if entry[1] >= 0:
            entry[2] += entry[1] * span
            entry[3] += span
        entry[0] = t

    def act(self, item: _Act, now: datetime) -> None:
        case_id, agent_id = item.case_id, item.agent_id
        if item.action in (Action.RESPOND, Action.RESOLVE) and (
            case_id is None or self.holder.get(case_id) != (agent_id, item.turn)
        ):
            return  # the case was taken from this agent since (escalated, re-offered)
        fields: dict[str, Any] = {}
        if case_id is not None:
            fields["case_id"] = case_id
        if item.action == Action.RESPOND:
            fields["chars"] = 200
        if item.presence is not None:
            fields["presence"] = item.presence
        if item.action == Action.RELABEL:
            fields["labels"] = Labels()
        command = COMMAND_TYPES[item.action](
            command_id=uuid.uuid5(_COMMANDS, str(next(self.commands))),
            actor=agent_id,
            at=now,
            **fields,
        )
        self.apply(command, now)
        if item.action == Action.RESOLVE and case_id is not None:
            self.holder.pop(case_id, None)


def simulate(
    arrivals: Sequence[Arrival],
    roster: Roster,
    sla_config: SlaConfig,
    settings: EngineSettings,
    handling: HandlingModel,
    *,
    tick: timedelta = timedelta(seconds=30),
    drain: timedelta = timedelta(hours=8),
    respond_after: timedelta = timedelta(seconds=45),
    breaks: timedelta | None = None,
    break_length: timedelta = timedelta(minutes=10),
    review_after: timedelta | None = timedelta(minutes=5),
) -> SimulationResult:
    """Run the engine through ``arrivals`` and ``drain`` beyond the last, agents working.

    Clock ticks come every ``tick`` (on a grid from the first arrival), as the worker's clock
    sends them; an agent's first reply comes ``respond_after`` after they accept a case (and
    again after each further message of the customer). With ``breaks``, every agent available
    at the start goes away for ``break_length`` once per ``breaks``, the agents' breaks spread
    over the period: they take no new case meanwhile, and a break also ends a run of hostile
    cases (an agent at ``max_hostile_streak`` is offered no hostile case until their presence
    changes, so a floor left with only hostile cases waits for a break). The
    handling time of a case is drawn (when not given by its arrival) as the case is created,
    in order of arrival, so runs of the same trace under different settings draw the same
    times for the same cases. A case held for review (its team's review policy is `hold`) is
    confirmed by the roster's first supervisor ``review_after`` after it was held (None: never).
    """
    # Floors split the work between router workers; a simulation routes the whole centre.
    engine = Engine(roster.as_one_floor(), sla_config, settings)
    ordered = sorted(enumerate(arrivals), key=lambda pair: (pair[1].at, pair[0]))
    handling_of = {
        case_id_for(a.feedback.event_id): a.handling_s
        for _, a in ordered
        if a.handling_s is not None
    }
    floor = _Floor(
        engine=engine,
        handling=handling,
        respond_after=respond_after,
        rng=random.Random(handling.seed),
        handling_of=handling_of,
        reviewer=next((a.id for a in roster.agents if a.tier == AgentTier.SUPERVISOR), None),
        review_after=review_after,
    )
    queue_depth: list[tuple[datetime, dict[str, int]]] = []
    if not ordered:
        return SimulationResult(cases=[], assignments=[], queue_depth=[], utilisation={})
    start = ordered[0][1].at
    end = ordered[-1][1].at + drain
    floor._track(set(engine.agents), start)
    for _, arrival in ordered:
        floor.at(arrival.at, arrival)
    if breaks is not None:
        present = [a for a in roster.agents if a.presence == Presence.AVAILABLE]
        for k, profile in enumerate(present):
            away = start + breaks * (k + 1) / (len(present) + 1)
            while away < end:
                floor.at(away, _Act(Action.PRESENCE, None, profile.id, -1, Presence.AWAY))
                back = away + break_length
                floor.at(back, _Act(Action.PRESENCE, None, profile.id, -1, Presence.AVAILABLE))
                away += breaks
    ticks = itertools.count(1)
    next_tick = start + tick * next(ticks)
    while True:
        upcoming = floor.pending[0][0] if floor.pending else None
        if next_tick <= end and (upcoming is None or next_tick <= upcoming):
            floor.apply(Tick(at=next_tick), next_tick)
            queue_depth.append((next_tick, {team: len(q) for team, q in engine.queues.items()}))
            next_tick = start + tick * next(ticks)
            continue
        if upcoming is None or upcoming > end:
            break
        when, _, item = heapq.heappop(floor.pending)
        if isinstance(item, Arrival):
            floor.apply(ClassifiedIn(at=when, feedback=item.feedback), when)
        else:
            floor.act(item, when)
    floor._track(set(floor.busy), end)
    utilisation = {
        agent_id: (entry[2] / entry[3] if entry[3] > 0 else 0.0)
        for agent_id, entry in sorted(floor.busy.items())
        if entry[3] > 0
    }
    cases = [case for case_id in floor.seen if (case := engine.case(case_id)) is not None]
    cases.sort(key=lambda c: (c.created_at, str(c.case_id)))
    return SimulationResult(
        cases=cases,
        assignments=floor.assignments,
        queue_depth=queue_depth,
        utilisation=utilisation,
        events=floor.events,
    )
