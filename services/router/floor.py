"""The supervisor's view of the floor: case counts, service-level attainment, breaches.

Computed from the cases the router keeps whole: open ones, and those resolved or changed within
``TRIAGE_ROUTER_RECENT_RESOLVED_H`` (older resolved cases are kept compressed, served by id
only), so the figures cover the work in hand and the latest resolutions.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel

from services.common.cases import AwayReason, Case, CaseState, Presence, Priority, SlaMetricName
from services.common.messages import UtcDatetime
from services.router.routing import AgentState

RECENT_BREACHES = 20
# The follow-up clock is a reminder to contact the customer after resolution, not a promise
# made to them: its passing is counted as due, never as a breach.
SERVICE_LEVELS = tuple(m for m in SlaMetricName if m != SlaMetricName.FOLLOW_UP)


class Attainment(BaseModel):
    """One service-level metric: clocks decided (stopped, or breached while running) and met."""

    metric: SlaMetricName
    completed: int
    met: int
    share: float | None


class Breach(BaseModel):
    """A deadline that passed."""

    case_id: uuid.UUID
    metric: SlaMetricName
    at: UtcDatetime
    team: str
    priority: Priority
    assignee: str | None


class SetAway(BaseModel):
    """An agent the router set away (offers lapsed, console gone), until they come back."""

    agent_id: str
    name: str
    team: str
    reason: AwayReason
    lapsed_offers: int = 0
    since: UtcDatetime | None


class FloorView(BaseModel):
    """The floor now."""

    at: UtcDatetime
    cases: dict[CaseState, int]
    attainment: list[Attainment]
    warnings: int
    breaches: int
    escalations: int
    follow_ups_due: int
    first_contact_resolution: float | None
    csat_average: float | None
    recent_breaches: list[Breach]
    set_away: list[SetAway] = []


def floor_view(
    cases: Iterable[Case], now: datetime, agents: Iterable[AgentState] = ()
) -> FloorView:
    """Summarise the kept cases, with the agents the router set away."""
    states = dict.fromkeys(CaseState, 0)
    decided = dict.fromkeys(SERVICE_LEVELS, 0)
    met = dict.fromkeys(SERVICE_LEVELS, 0)
    warnings = breaches = escalations = resolved = first_contact = follow_ups = 0
    scores: list[int] = []
    recent: list[Breach] = []
    for case in cases:
        states[case.state] += 1
        escalations += case.escalations
        if case.state == CaseState.RESOLVED:
            resolved += 1
            first_contact += case.first_contact_resolution
        if case.csat is not None:
            scores.append(case.csat)
        for deadline in case.deadlines:
            if deadline.metric == SlaMetricName.FOLLOW_UP:
                follow_ups += deadline.breached
                continue
            warnings += deadline.warned
            if deadline.met is not None or deadline.breached:
                decided[deadline.metric] += 1
                met[deadline.metric] += bool(deadline.met)
            if deadline.breached:
                breaches += 1
                recent.append(
                    Breach(
                        case_id=case.case_id,
                        metric=deadline.metric,
                        at=_breached_at(deadline.due_at, deadline.stopped_at, case.updated_at),
                        team=case.team,
                        priority=case.priority,
                        assignee=case.assignee,
                    )
                )
    recent.sort(key=lambda b: b.at, reverse=True)
    return FloorView(
        at=now,
        cases=states,
        attainment=[
            Attainment(
                metric=metric,
                completed=decided[metric],
                met=met[metric],
                share=round(met[metric] / decided[metric], 4) if decided[metric] else None,
            )
            for metric in SERVICE_LEVELS
        ],
        warnings=warnings,
        breaches=breaches,
        escalations=escalations,
        follow_ups_due=follow_ups,
        first_contact_resolution=round(first_contact / resolved, 4) if resolved else None,
        csat_average=round(sum(scores) / len(scores), 2) if scores else None,
        recent_breaches=recent[:RECENT_BREACHES],
        set_away=sorted(
            (
                SetAway(
                    agent_id=agent.id,
                    name=agent.profile.name,
                    team=agent.profile.team,
                    reason=agent.away_reason,
                    lapsed_offers=agent.lapsed_offers,
                    since=agent.presence_since,
                )
                for agent in agents
                if agent.presence == Presence.AWAY and agent.away_reason is not None
            ),
            key=lambda a: (a.since or now, a.agent_id),
        ),
    )


def _breached_at(
    due_at: datetime | None, stopped_at: datetime | None, fallback: datetime
) -> datetime:
    """When the deadline passed: its due time while it runs, else the best time known."""
    return due_at or stopped_at or fallback
