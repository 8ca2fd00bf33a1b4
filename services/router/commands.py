"""Messages of the router's inbox topic: classified feedback, agents' commands and clock ticks.

Everything that changes routing state passes through the inbox, in order, so one consumer
applies it and the log of the topic replays every decision.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from services.common.cases import INCIDENT_REFERENCE, Case, Presence, SlaMetricName
from services.common.messages import (
    Category,
    DifficultType,
    FeedbackClassified,
    Sentiment,
    UtcDatetime,
)
from services.common.models import FrozenModel
from services.router.roster import AgentProfile
from services.router.sla import SlaClock


class Action(StrEnum):
    """What an agent or supervisor asks the router to do."""

    ACCEPT = "accept"
    DECLINE = "decline"
    RESPOND = "respond"
    WAIT = "wait"
    RESUME = "resume"
    RESOLVE = "resolve"
    TRANSFER = "transfer"
    ESCALATE = "escalate"
    PRESENCE = "presence"
    REASSIGN = "reassign"
    CSAT = "csat"
    RELABEL = "relabel"
    TAG_INCIDENT = "tag_incident"
    DISCONNECTED = "disconnected"  # the router's own: the agent's console has been gone too long
    UPSERT_AGENT = "upsert_agent"
    REMOVE_AGENT = "remove_agent"


class Labels(FrozenModel):
    """Corrected tags of a case (any subset)."""

    sentiment: Sentiment | None = None
    category: Category | None = None
    difficult: DifficultType | None = None


#: The most cases one incident command tags (an emerging cluster reports its latest 500).
MAX_INCIDENT_EVENTS = 500


class IncidentRef(FrozenModel):
    """The incident to tag cases with."""

    reference: str = Field(min_length=1, max_length=64, pattern=INCIDENT_REFERENCE)
    note: str | None = Field(default=None, max_length=500)


class ClassifiedIn(FrozenModel):
    """A classified message for the router."""

    schema_version: Literal[1] = 1
    kind: Literal["feedback"] = "feedback"
    at: UtcDatetime = Field(description="When the router took the message in.")
    feedback: FeedbackClassified
    handed_from: str | None = Field(
        default=None,
        description="The floor that handed this message on to this one (a message is handed "
        "on at most once).",
    )


#: The optional fields of the one flat command model the inbox held before there was one model
#: per action: a record written then carries each of them, null where its action had no use
#: for it, and still reads as its action's model.
_FLAT_FIELDS = frozenset(
    {
        "case_id",
        "reason",
        "note",
        "chars",
        "to_team",
        "to_agent",
        "presence",
        "score",
        "labels",
        "profile",
        "incident",
        "event_ids",
    }
)

Reason = Annotated[str | None, Field(max_length=500)]


class CommandBase(FrozenModel):
    """What every agent's or supervisor's command carries, already authenticated by the API."""

    schema_version: Literal[1] = 1
    kind: Literal["command"] = "command"
    command_id: uuid.UUID
    actor: str = Field(description="The authenticated agent id.")
    action: Action
    at: UtcDatetime

    @model_validator(mode="before")
    @classmethod
    def _drop_flat_nulls(cls, data: Any) -> Any:
        """Read a record of the flat model: a null field this action has no use for is absent.
        A non-null one is kept, so ``extra="forbid"`` refuses it rather than losing it."""
        if not isinstance(data, dict):
            return data
        return {
            key: value
            for key, value in data.items()
            if value is not None or key not in _FLAT_FIELDS or key in cls.model_fields
        }


class CaseCommand(CommandBase):
    """A command on one case."""

    case_id: uuid.UUID


class Accept(CaseCommand):
    """Accept the case offered to the actor."""

    action: Literal[Action.ACCEPT] = Action.ACCEPT


class Decline(CaseCommand):
    """Decline the case offered to the actor."""

    action: Literal[Action.DECLINE] = Action.DECLINE
    reason: Reason = None


class Respond(CaseCommand):
    """A reply was sent to the customer."""

    action: Literal[Action.RESPOND] = Action.RESPOND
    chars: int | None = Field(default=None, ge=0, description="Length of the reply sent.")


class Wait(CaseCommand):
    """The case waits on the customer."""

    action: Literal[Action.WAIT] = Action.WAIT
    reason: Reason = None


class Resume(CaseCommand):
    """The case stops waiting on the customer."""

    action: Literal[Action.RESUME] = Action.RESUME


class Resolve(CaseCommand):
    """The case is resolved."""

    action: Literal[Action.RESOLVE] = Action.RESOLVE
    note: str | None = Field(default=None, max_length=2000)


#: Why a transfer with neither a team nor an agent is refused.
TRANSFER_TARGET = "give to_team or to_agent"


class Transfer(CaseCommand):
    """Move the case to another team, or to an agent (and their team)."""

    action: Literal[Action.TRANSFER] = Action.TRANSFER
    to_team: str | None = Field(default=None, max_length=40)
    to_agent: str | None = Field(default=None, max_length=64)
    reason: Reason = None

    @model_validator(mode="after")
    def _has_target(self) -> Transfer:
        if self.to_team is None and self.to_agent is None:
            raise ValueError(TRANSFER_TARGET)
        return self


class Escalate(CaseCommand):
    """Raise the case to the next tier."""

    action: Literal[Action.ESCALATE] = Action.ESCALATE
    reason: Reason = None


class Reassign(CaseCommand):
    """A supervisor assigns the case to an agent."""

    action: Literal[Action.REASSIGN] = Action.REASSIGN
    to_agent: str = Field(max_length=64)


class Csat(CaseCommand):
    """A supervisor records the customer's satisfaction with a resolved case."""

    action: Literal[Action.CSAT] = Action.CSAT
    score: int = Field(ge=1, le=5)


class Relabel(CaseCommand):
    """A supervisor corrects (or, in the review lane, confirms) the case's tags."""

    action: Literal[Action.RELABEL] = Action.RELABEL
    labels: Labels


class TagIncident(CommandBase):
    """A supervisor ties the cases of the given messages to an incident."""

    action: Literal[Action.TAG_INCIDENT] = Action.TAG_INCIDENT
    incident: IncidentRef
    event_ids: tuple[uuid.UUID, ...] = Field(
        min_length=1, max_length=MAX_INCIDENT_EVENTS, description="Messages whose cases to tag."
    )


class SetPresence(CommandBase):
    """Set the actor's presence, or (a supervisor) another agent's."""

    action: Literal[Action.PRESENCE] = Action.PRESENCE
    presence: Presence
    to_agent: str | None = Field(default=None, max_length=64, description="None: the actor.")


class UpsertAgent(CommandBase):
    """A supervisor changes an agent of the roster file."""

    action: Literal[Action.UPSERT_AGENT] = Action.UPSERT_AGENT
    profile: AgentProfile


class RemoveAgent(CommandBase):
    """A supervisor takes an agent off the floor."""

    action: Literal[Action.REMOVE_AGENT] = Action.REMOVE_AGENT
    to_agent: str = Field(max_length=64)


class Disconnected(CommandBase):
    """The router's own: the agent's console has been gone too long."""

    action: Literal[Action.DISCONNECTED] = Action.DISCONNECTED


#: The commands on one case, and those on the floor (agents, presence, incidents).
OnCase = (
    Accept
    | Decline
    | Respond
    | Wait
    | Resume
    | Resolve
    | Transfer
    | Escalate
    | Reassign
    | Csat
    | Relabel
)
OnFloor = TagIncident | SetPresence | UpsertAgent | RemoveAgent | Disconnected

Command = Annotated[OnCase | OnFloor, Field(discriminator="action")]

#: The model of each action.
COMMAND_TYPES: dict[Action, type[OnCase | OnFloor]] = {
    model.model_fields["action"].default: model
    for model in (
        Accept,
        Decline,
        Respond,
        Wait,
        Resume,
        Resolve,
        Transfer,
        Escalate,
        Reassign,
        Csat,
        Relabel,
        TagIncident,
        SetPresence,
        UpsertAgent,
        RemoveAgent,
        Disconnected,
    )
}


class Tick(FrozenModel):
    """The clock: offers expiring and service-level deadlines due up to ``at``."""

    schema_version: Literal[1] = 1
    kind: Literal["tick"] = "tick"
    at: UtcDatetime


class CaseArrived(FrozenModel):
    """A case another floor handed over (transferred or relabelled to a team of this floor):
    the case as that floor last stored it, clocks running."""

    schema_version: Literal[1] = 1
    kind: Literal["case_arrived"] = "case_arrived"
    at: UtcDatetime
    from_floor: str
    case: Case
    clocks: dict[SlaMetricName, SlaClock] = Field(default_factory=dict)
    commands: list[str] = Field(default_factory=list)


Inbound = Annotated[ClassifiedIn | Command | Tick | CaseArrived, Field(discriminator="kind")]


class Status(StrEnum):
    """How a command ended; the API maps each to an HTTP status."""

    OK = "ok"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    CONFLICT = "conflict"
    INVALID = "invalid"


class IncidentTagged(FrozenModel):
    """What an incident command did, case by case."""

    reference: str
    tagged: list[uuid.UUID] = Field(description="Cases newly tagged with the reference.")
    unchanged: list[uuid.UUID] = Field(description="Cases that already carried it.")
    missing: list[uuid.UUID] = Field(description="Event ids of no case the router keeps.")


class CommandResult(FrozenModel):
    """The answer to a command."""

    command_id: uuid.UUID
    status: Status
    message: str = ""
    case: Case | None = None
    incident: IncidentTagged | None = None
