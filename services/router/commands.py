"""Messages of the router's inbox topic: classified feedback, agents' commands and clock ticks.

Everything that changes routing state passes through the inbox, in order, so one consumer
applies it and the log of the topic replays every decision.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from services.common.cases import INCIDENT_REFERENCE, Case, Presence
from services.common.messages import (
    Category,
    DifficultType,
    FeedbackClassified,
    Sentiment,
    UtcDatetime,
)
from services.common.models import FrozenModel
from services.router.roster import AgentProfile


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


class Command(FrozenModel):
    """An agent's or supervisor's command, already authenticated by the API."""

    schema_version: Literal[1] = 1
    kind: Literal["command"] = "command"
    command_id: uuid.UUID
    actor: str = Field(description="The authenticated agent id.")
    action: Action
    at: UtcDatetime
    case_id: uuid.UUID | None = None
    reason: str | None = Field(default=None, max_length=500)
    note: str | None = Field(default=None, max_length=2000)
    chars: int | None = Field(default=None, ge=0, description="Length of the reply sent.")
    to_team: str | None = Field(default=None, max_length=40)
    to_agent: str | None = Field(default=None, max_length=64)
    presence: Presence | None = None
    score: int | None = Field(default=None, ge=1, le=5)
    labels: Labels | None = None
    profile: AgentProfile | None = None
    incident: IncidentRef | None = None
    event_ids: tuple[uuid.UUID, ...] | None = Field(
        default=None, max_length=MAX_INCIDENT_EVENTS, description="Messages whose cases to tag."
    )


class Tick(FrozenModel):
    """The clock: offers expiring and service-level deadlines due up to ``at``."""

    schema_version: Literal[1] = 1
    kind: Literal["tick"] = "tick"
    at: UtcDatetime


Inbound = Annotated[ClassifiedIn | Command | Tick, Field(discriminator="kind")]


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
