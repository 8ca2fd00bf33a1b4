"""Case models: what the router keeps, shows agents and publishes on ``cases.events``.

A case is one customer issue, made of one or more messages. The router owns cases; every
change to one is published as a :class:`CaseEvent` carrying the case as it is after the
change, so consumers (dashboards, the console, audits) never need the router's state.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from services.common.messages import (
    Category,
    Channel,
    CustomerHistory,
    CustomerTier,
    DifficultType,
    Facts,
    Tag,
    UtcDatetime,
)
from services.common.models import WireModel

#: Namespace of case ids and case event ids (both are derived, so replays give the same ids).
CASE_NAMESPACE = uuid.UUID("0b6c1f4e-8f0a-4a53-9d43-5f3e2a7c9b11")


def case_id_for(first_event_id: uuid.UUID) -> uuid.UUID:
    """The id of the case a message opens: the same message always opens the same case id."""
    return uuid.uuid5(CASE_NAMESPACE, f"case\x00{first_event_id}")


def case_event_id(case_id: uuid.UUID, version: int) -> uuid.UUID:
    """The id of the event that brought a case to ``version`` (stable across replays)."""
    return uuid.uuid5(CASE_NAMESPACE, f"event\x00{case_id}\x00{version}")


class Priority(StrEnum):
    """P1 is the most urgent."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


class CaseState(StrEnum):
    """Where a case is in its life."""

    QUEUED = "queued"
    OFFERED = "offered"
    ASSIGNED = "assigned"
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    RESOLVED = "resolved"


OPEN_STATES = frozenset(
    {CaseState.QUEUED, CaseState.OFFERED, CaseState.ASSIGNED, CaseState.WAITING_ON_CUSTOMER}
)


class AgentTier(StrEnum):
    """Seniority; escalation goes frontline → senior → supervisor."""

    FRONTLINE = "frontline"
    SENIOR = "senior"
    SUPERVISOR = "supervisor"


TIER_RANK = {AgentTier.FRONTLINE: 0, AgentTier.SENIOR: 1, AgentTier.SUPERVISOR: 2}


class Presence(StrEnum):
    """Whether an agent takes work now."""

    AVAILABLE = "available"
    BUSY = "busy"
    AWAY = "away"
    OFFLINE = "offline"


class RemedyKind(StrEnum):
    """What an agent may offer a customer to put things right."""

    REFUND = "refund"
    FEE_WAIVER = "fee_waiver"
    VOUCHER = "voucher"
    REPLACEMENT = "replacement"
    GOODWILL_CREDIT = "goodwill_credit"


class SlaMetricName(StrEnum):
    """The service-level clocks of a case."""

    FIRST_RESPONSE = "first_response"
    NEXT_RESPONSE = "next_response"
    RESOLUTION = "resolution"
    FOLLOW_UP = "follow_up"
    REVIEW = "review"


class CaseEventType(StrEnum):
    """What happened to a case."""

    CREATED = "created"
    MESSAGE_ADDED = "message_added"
    QUEUED = "queued"
    OFFERED = "offered"
    OFFER_DECLINED = "offer_declined"
    OFFER_TIMED_OUT = "offer_timed_out"
    ASSIGNED = "assigned"
    RESPONDED = "responded"
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    RESUMED = "resumed"
    TRANSFERRED = "transferred"
    ESCALATED = "escalated"
    PRIORITY_RAISED = "priority_raised"
    RETURNED = "returned"
    SLA_WARNING = "sla_warning"
    SLA_BREACHED = "sla_breached"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    FOLLOW_UP_DUE = "follow_up_due"
    CSAT_RECORDED = "csat_recorded"
    RELABELLED = "relabelled"
    INCIDENT_TAGGED = "incident_tagged"


class PriorityComponent(WireModel):
    """One term of the priority score, so the priority can be explained."""

    name: str
    points: float
    detail: str


class Remedy(WireModel):
    """A remedy: its kind and, when known, the amount."""

    kind: RemedyKind
    amount: float | None = Field(default=None, ge=0)
    currency: str | None = None


class CaseMessage(WireModel):
    """One customer message of the case, with its tags."""

    event_id: uuid.UUID
    channel: Channel
    received_at: UtcDatetime
    subject: str | None = None
    text: str
    text_chars: int | None = Field(
        default=None,
        ge=0,
        description="Set when the text is an excerpt: the full text's length. A case carries "
        "its latest message whole and earlier ones as excerpts; every message's full text "
        "is on feedback.classified.",
    )
    sentiment: Tag
    sentiment_score: float
    category: Tag
    difficult: Tag
    needs_review: bool
    public: bool = False
    reach: int | None = None


class Deadline(WireModel):
    """One service-level clock as the agent sees it."""

    metric: SlaMetricName
    target_seconds: float
    due_at: UtcDatetime | None = Field(description="Breach time; null while paused or stopped.")
    warning_at: UtcDatetime | None = None
    paused: bool = False
    stopped_at: UtcDatetime | None = None
    met: bool | None = Field(default=None, description="For a stopped clock: within target.")
    warned: bool = False
    breached: bool = False


class Offer(WireModel):
    """A case offered to one agent, who must accept before it expires."""

    agent_id: str
    offered_at: UtcDatetime
    expires_at: UtcDatetime


class Candidate(WireModel):
    """An eligible agent as the routing decision ranked it."""

    agent_id: str
    tier: AgentTier
    proficiency: int
    load: float
    idle_since: UtcDatetime | None = None


class RoutingDecision(WireModel):
    """Why a case went where it went (or waits): the explainable routing log."""

    at: UtcDatetime
    outcome: Literal["offered", "queued", "assigned"]
    agent_id: str | None = None
    rule: str
    eligible: int = Field(description="Agents eligible when the decision was made.")
    candidates: list[Candidate] = Field(default_factory=list, description="The best few.")
    excluded: dict[str, int] = Field(
        default_factory=dict, description="Agents of the team left out, by the first rule failed."
    )


class Review(WireModel):
    """A supervisor's check of tags the classifier was unsure of (the review lane)."""

    status: Literal["pending", "done"]
    since: UtcDatetime = Field(description="When the case entered the review lane.")
    hold: bool = Field(
        default=False,
        description="Not offered until reviewed (the team's review policy is `hold`).",
    )
    reviewed_by: str | None = None
    reviewed_at: UtcDatetime | None = None


INCIDENT_REFERENCE = r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"


class IncidentTag(WireModel):
    """The incident a supervisor tied a case to (an outage, a failed delivery round), so the
    agent working it knows the cause and the agreed answer."""

    reference: str = Field(min_length=1, max_length=64, pattern=INCIDENT_REFERENCE)
    note: str | None = Field(default=None, max_length=500)
    tagged_by: str
    tagged_at: UtcDatetime


class Case(WireModel):
    """A customer issue, with everything the agent needs to resolve it at first contact."""

    case_id: uuid.UUID
    version: int = Field(default=0, description="Grows by one with every published change.")
    state: CaseState
    team: str
    channel: Channel
    platform: str | None = Field(
        default=None, description="The platform that posted the case's first message."
    )
    customer_id: str
    customer_tier: CustomerTier = CustomerTier.STANDARD
    language: str | None = None
    subject: str | None = None
    messages: list[CaseMessage]
    category: Category
    difficult: DifficultType
    hostile: bool = Field(description="Abusive or angry: weighs more on the agent's capacity.")
    guidance: str = Field(description="How to handle this kind of customer.")
    priority: Priority
    base_priority: Priority
    priority_score: float
    priority_components: list[PriorityComponent]
    facts: Facts
    history: CustomerHistory
    remedy: Remedy | None = Field(default=None, description="The remedy the case likely needs.")
    required_tier: AgentTier = AgentTier.FRONTLINE
    assignee: str | None = None
    offer: Offer | None = None
    declined_by: list[str] = Field(default_factory=list)
    deadlines: list[Deadline] = Field(default_factory=list)
    thread_keys: list[str] = Field(default_factory=list)
    created_at: UtcDatetime
    updated_at: UtcDatetime
    queued_at: UtcDatetime | None = None
    assigned_at: UtcDatetime | None = None
    first_response_at: UtcDatetime | None = None
    last_response_at: UtcDatetime | None = None
    resolved_at: UtcDatetime | None = None
    resolution_note: str | None = None
    agents_involved: list[str] = Field(default_factory=list)
    reopened: int = 0
    escalations: int = 0
    transfers: int = 0
    csat: int | None = Field(default=None, ge=1, le=5)
    follow_up_due_at: UtcDatetime | None = None
    routing: list[RoutingDecision] = Field(default_factory=list)
    incident: IncidentTag | None = Field(
        default=None, description="The incident a supervisor tagged the case with."
    )
    review: Review | None = Field(
        default=None, description="The review lane: set when a message's tags need review."
    )

    @property
    def is_open(self) -> bool:
        """Not resolved."""
        return self.state in OPEN_STATES

    @property
    def first_contact_resolution(self) -> bool:
        """Resolved by the first agent who took it, without transfer, escalation or reopen."""
        return (
            self.state == CaseState.RESOLVED
            and len(self.agents_involved) <= 1
            and self.transfers == 0
            and self.escalations == 0
            and self.reopened == 0
        )


class CaseEvent(WireModel):
    """One change to a case (topic ``cases.events``, keyed by case id)."""

    schema_version: Literal[1] = 1
    event_type: Literal["CaseEvent"] = "CaseEvent"
    event_id: uuid.UUID
    type: CaseEventType
    case_id: uuid.UUID
    version: int
    at: UtcDatetime
    actor: str = Field(description="'router', 'customer' or the acting agent's id.")
    agent_id: str | None = Field(default=None, description="The agent the event concerns.")
    detail: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    case: Case


class AwayReason(StrEnum):
    """Why the router set an available agent away."""

    OFFERS_LAPSED = "offers_lapsed"
    DISCONNECTED = "disconnected"


class AgentNotice(WireModel):
    """The router set an agent who had walked away to ``away`` (topic ``agents.events``, keyed
    by agent id): offers to them lapsed one after another, or their console was disconnected
    for longer than the grace period. Cases they were offered went back to the queue."""

    schema_version: Literal[1] = 1
    event_type: Literal["AgentNotice"] = "AgentNotice"
    event_id: uuid.UUID = Field(description="Stable across replays of the same change.")
    type: Literal["set_away"] = "set_away"
    agent_id: str
    team: str
    at: UtcDatetime
    reason: AwayReason
    lapsed_offers: int = Field(default=0, description="Offers that lapsed in a row.")


def agent_notice_id(agent_id: str, at: datetime, reason: AwayReason) -> uuid.UUID:
    """The id of a notice (the same when the inbox is replayed)."""
    return uuid.uuid5(CASE_NAMESPACE, f"agent\x00{agent_id}\x00{at.isoformat()}\x00{reason}")
