"""Who may take a case, who should, and the order in which waiting cases are taken.

The rules are pure functions (:func:`exclusion`, :func:`choice_key`, :func:`queue_key`,
:func:`risk_key`). The two
indexes keep the cost of a decision independent of the size of the floor: agents are kept
sorted by preference per (team, category, channel, tier), with agents full on a channel left
out of that channel's lists, so a decision usually inspects the first few entries only.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sortedcontainers import SortedList

from services.common.cases import (
    TIER_RANK,
    AgentTier,
    AwayReason,
    Case,
    Deadline,
    Presence,
    Priority,
    SlaMetricName,
)
from services.common.messages import Category, Channel
from services.router.guidance import covers
from services.router.roster import AgentProfile

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class RoutingRules:
    """The knobs of eligibility."""

    hostile_weight: float = 2.0
    max_hostile_streak: int = 2
    language_fallback: bool = True


@dataclass(slots=True)
class AgentState:
    """An agent as the router sees them now: profile, presence and the work they hold."""

    profile: AgentProfile
    presence: Presence
    load: dict[Channel, float] = field(default_factory=dict)
    holding: dict[uuid.UUID, float] = field(default_factory=dict)
    hostile_streak: int = 0
    last_assigned_at: datetime | None = None
    presence_since: datetime | None = None
    lapsed_offers: int = 0  # offers in a row that expired unanswered
    away_reason: AwayReason | None = None  # set when the router, not the agent, set them away

    @property
    def id(self) -> str:
        return self.profile.id

    def used(self, channel: Channel) -> float:
        return self.load.get(channel, 0.0)

    def room(self, channel: Channel) -> float:
        """Capacity left on a channel (0 for a channel the agent does not work)."""
        return self.profile.channels.get(channel, 0) - self.used(channel)

    @property
    def utilisation(self) -> float:
        """Share of the agent's total capacity in use."""
        capacity = sum(self.profile.channels.values())
        return sum(self.load.values()) / capacity if capacity else 1.0


def case_weight(case: Case, rules: RoutingRules) -> float:
    """How much of a channel's capacity a case takes: hostile cases weigh more."""
    return rules.hostile_weight if case.hostile else 1.0


def speaks(agent: AgentProfile, language: str | None) -> bool:
    """Whether the agent can answer in the case's language (unknown: anyone)."""
    return language is None or language.lower() in agent.languages


def exclusion(
    agent: AgentState,
    case: Case,
    rules: RoutingRules,
    *,
    language_required: bool = True,
    ignore_capacity: bool = False,
) -> str | None:
    """The first rule that keeps an agent from a case, or None when the agent is eligible."""
    profile = agent.profile
    if agent.presence != Presence.AVAILABLE:
        return "presence"
    if profile.team != case.team:
        return "team"
    if TIER_RANK[profile.tier] < TIER_RANK[case.required_tier]:
        return "tier"
    if profile.skills.get(case.category, 0) < 1:
        return "skill"
    if case.channel not in profile.channels:
        return "channel"
    if language_required and not speaks(profile, case.language):
        return "language"
    if agent.id in case.declined_by:
        return "declined"
    if not ignore_capacity and agent.room(case.channel) < case_weight(case, rules):
        return "capacity"
    if profile.tier != AgentTier.SUPERVISOR and not covers(profile.authority, case.remedy):
        # Supervisors decide remedies beyond anyone's authority (approval is theirs to seek).
        return "authority"
    if case.hostile:
        if not profile.hostile:
            return "hostile"
        if agent.hostile_streak >= rules.max_hostile_streak:
            return "hostile_streak"
    return None


def choice_key(agent: AgentState) -> tuple[float, float, str]:
    """Order among agents of equal proficiency: least loaded, then longest idle, then id (so
    decisions are reproducible)."""
    idle = agent.last_assigned_at or agent.presence_since or EPOCH
    return (round(agent.utilisation, 6), idle.timestamp(), agent.id)


def queue_key(case: Case, aging_points_per_minute: float) -> tuple[float, float, str]:
    """Order of a team queue: highest effective priority first, where waiting raises it.

    ``score + rate * (now - queued_at)`` ranks cases the same as ``score - rate * queued_at``
    at every ``now``, so the order is fixed while cases wait and the queue stays sorted.
    """
    queued = (case.queued_at or case.created_at).timestamp()
    effective = case.priority_score - aging_points_per_minute * queued / 60.0
    return (-effective, queued, str(case.case_id))


class QueueOrder(StrEnum):
    """How a team queue is ordered."""

    RISK = "risk"
    """Breach risk: the case whose running deadline comes first (less a priority allowance)."""
    SCORE = "score"
    """Priority score plus linear aging (deadlines not used)."""


#: How much earlier than its deadline a case of each priority is taken: the tie-break between
#: cases due at about the same time, and what lets a P1 overtake cases due a little sooner. It
#: is bounded, so it cannot starve anyone: a case is overtaken by no case that comes due more
#: than the largest allowance after it.
RISK_ALLOWANCE_S: Mapping[Priority, float] = {
    Priority.P1: 300.0,
    Priority.P2: 60.0,
    Priority.P3: 30.0,
    Priority.P4: 0.0,
}

#: The share of each target kept back for the work that meets it: a case must be taken that
#: long before a deadline to meet it (a first reply takes moments; a resolution takes the
#: handling time, which grows with the target the service level allows for it).
RISK_LEAD_SHARE: Mapping[SlaMetricName, float] = {
    SlaMetricName.FIRST_RESPONSE: 0.0,
    SlaMetricName.NEXT_RESPONSE: 0.0,
    SlaMetricName.RESOLUTION: 0.25,
}

#: The horizon of a case with no running deadline (no target configured for it).
NO_DEADLINE_S = 86_400.0

_PRIORITY_RANK = {priority: float(n) for n, priority in enumerate(Priority)}


def risk_horizon(deadlines: Sequence[Deadline], queued_at: datetime) -> float:
    """The time (POSIX seconds) by which a waiting case must be taken to breach nothing more.

    It is the earliest due time among the running deadlines not yet breached, each less its
    lead (:data:`RISK_LEAD_SHARE` of its target): taking the case later breaches that one.
    Once a deadline has breached, taking the case sooner no longer saves it, so it stops
    counting and the case gives way to cases whose deadlines can still be met (a first
    response already late waits behind cases still on time, up to its resolution horizon). A
    case whose every running deadline has breached is due again one target after its last
    breach, so it still comes up within a bounded time. A paused or stopped clock has no due
    time and does not count.
    """
    meetable: list[float] = []
    overdue: list[tuple[float, float]] = []
    for deadline in deadlines:
        if deadline.due_at is None or deadline.stopped_at is not None or deadline.paused:
            continue
        due = deadline.due_at.timestamp()
        if deadline.breached:
            overdue.append((due, deadline.target_seconds))
        else:
            lead = RISK_LEAD_SHARE.get(deadline.metric, 0.0) * deadline.target_seconds
            meetable.append(due - lead)
    if meetable:
        return min(meetable)
    if overdue:
        due, target = max(overdue)
        return due + target
    return queued_at.timestamp() + NO_DEADLINE_S


def risk_key(
    case: Case,
    deadlines: Sequence[Deadline] | None = None,
    allowance: Mapping[Priority, float] = RISK_ALLOWANCE_S,
) -> tuple[float, float, str]:
    """Order of a team queue by breach risk: the least time left before a deadline that can
    still be met comes first, a higher priority taking its allowance earlier; on a tie, the
    higher priority, then the case id.

    The time left to a deadline is ``due_at - now``; every case of a queue part waits for the
    same agents, so the expected wait for one is common to them and ``now`` and that wait drop
    out of the comparison: the order is ``horizon - allowance`` (:func:`risk_horizon`), fixed
    while the case waits, and the queue stays sorted. It changes when the case's deadlines or
    priority do (a deadline breached, a clock started, stopped, paused or resumed, the
    priority raised), and the engine files the case again then. ``deadlines`` defaults to
    ``case.deadlines``.
    """
    queued = case.queued_at or case.created_at
    horizon = risk_horizon(case.deadlines if deadlines is None else deadlines, queued)
    at = horizon - allowance.get(case.priority, 0.0)
    return (at, _PRIORITY_RANK[case.priority], str(case.case_id))


IndexKey = tuple[str, Category, Channel, AgentTier, str, bool]
"""(team, category, channel, tier, language, can take a hostile case now)."""
QueueKey = tuple[float, float, str]


class AgentIndex:
    """Available agents sorted by preference, per (team, category, channel, tier, language,
    able to take a hostile case now).

    An agent with no room left on a channel is left out of that channel's lists, so the first
    entries of a list are almost always eligible and a decision costs the same on a floor of
    100 agents as on one of 10,000.
    """

    def __init__(self) -> None:
        self._lists: dict[IndexKey, SortedList] = {}
        self._entries: dict[str, list[tuple[IndexKey, tuple[Any, ...]]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def remove(self, agent_id: str) -> None:
        for key, entry in self._entries.pop(agent_id, []):
            self._lists[key].remove(entry)

    def update(self, agent: AgentState, rules: RoutingRules) -> None:
        """Re-rank an agent after a change of load, presence or profile."""
        self.remove(agent.id)
        if agent.presence != Presence.AVAILABLE:
            return
        profile = agent.profile
        rank = choice_key(agent)
        entries: list[tuple[IndexKey, tuple[Any, ...]]] = []
        for channel in profile.channels:
            room = agent.room(channel)
            if room < 1.0:
                continue  # full on this channel: not a candidate for it
            # In the hostile lists only while the agent can take a hostile case now.
            takes = (
                profile.hostile
                and room >= rules.hostile_weight
                and agent.hostile_streak < rules.max_hostile_streak
            )
            for category, proficiency in profile.skills.items():
                for language in profile.languages:
                    key = (profile.team, category, channel, profile.tier, language, takes)
                    entry = (-proficiency, *rank)
                    self._lists.setdefault(key, SortedList()).add(entry)
                    entries.append((key, entry))
        self._entries[agent.id] = entries

    def candidates(
        self,
        team: str,
        category: Category,
        channel: Channel,
        min_tier: AgentTier,
        *,
        languages: Iterable[str],
        hostile: bool,
    ) -> Iterator[tuple[int, str]]:
        """(proficiency, agent id) in order of preference: lowest sufficient tier first, then
        best proficiency, least loaded, longest idle. Each agent comes once."""
        seen: set[str] = set()
        for tier in AgentTier:
            if TIER_RANK[tier] < TIER_RANK[min_tier]:
                continue
            lists = [
                self._lists.get((team, category, channel, tier, language, takes), ())
                for language in languages
                for takes in ((True,) if hostile else (True, False))
            ]
            for entry in heapq.merge(*[lst for lst in lists if lst]):
                agent_id = entry[-1]
                if agent_id in seen:
                    continue
                seen.add(agent_id)
                yield -entry[0], agent_id


QueuePart = tuple[Channel, Category, str, AgentTier, bool]
"""(channel, category, language or '*' when no agent of the team speaks it, required tier,
hostile)."""
ANY_LANGUAGE = "*"


class TeamQueue:
    """The cases of one team waiting for an agent, in the order they are to be taken.

    Cases are also kept per :data:`QueuePart`, so an agent who frees capacity looks only at the
    heads of the parts they could take, however deep the queue.
    """

    def __init__(self, aging_points_per_minute: float, order: QueueOrder = QueueOrder.RISK) -> None:
        self.aging = aging_points_per_minute
        self.order = order
        self._sorted: SortedList = SortedList()
        self._by: dict[QueuePart, SortedList] = {}
        self._keys: dict[uuid.UUID, tuple[QueuePart, QueueKey]] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, case_id: object) -> bool:
        return case_id in self._keys

    def key(self, case: Case, deadlines: Sequence[Deadline] | None = None) -> QueueKey:
        """The case's place in this queue (``deadlines``: the case's, as of now)."""
        if self.order == QueueOrder.RISK:
            return risk_key(case, deadlines)
        return queue_key(case, self.aging)

    def add(self, case: Case, language: str, deadlines: Sequence[Deadline] | None = None) -> None:
        """Queue (or re-queue) a case; ``language`` is its language or :data:`ANY_LANGUAGE`;
        ``deadlines`` are its deadlines as of now (default: ``case.deadlines``)."""
        self.discard(case.case_id)
        key = self.key(case, deadlines)
        part = (case.channel, case.category, language, case.required_tier, case.hostile)
        self._keys[case.case_id] = (part, key)
        self._sorted.add(key)
        self._by.setdefault(part, SortedList()).add(key)

    def discard(self, case_id: uuid.UUID) -> None:
        found = self._keys.pop(case_id, None)
        if found is not None:
            part, key = found
            self._sorted.remove(key)
            self._by[part].remove(key)

    def __iter__(self) -> Iterator[uuid.UUID]:
        for key in list(self._sorted):
            yield uuid.UUID(key[2])

    def first(
        self,
        agent: AgentState,
        rules: RoutingRules,
        accept: Callable[[uuid.UUID], bool],
    ) -> uuid.UUID | None:
        """The highest waiting case this agent could take that ``accept`` confirms."""
        profile = agent.profile
        rank = TIER_RANK[profile.tier]
        hostile_ok = profile.hostile and agent.hostile_streak < rules.max_hostile_streak
        best: QueueKey | None = None
        for (channel, category, language, tier, hostile), keys in self._by.items():
            if not keys or category not in profile.skills or TIER_RANK[tier] > rank:
                continue
            if language != ANY_LANGUAGE and language not in profile.languages:
                continue
            room = agent.room(channel)
            if room < (rules.hostile_weight if hostile else 1.0) or (hostile and not hostile_ok):
                continue
            for key in keys:
                if best is not None and key >= best:
                    break
                if accept(uuid.UUID(key[2])):
                    best = key
                    break
        return uuid.UUID(best[2]) if best is not None else None
