"""What one inbox message did, and the one way a case event is recorded on it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import TypeAdapter

from services.common.cases import (
    AgentNotice,
    CaseEvent,
    CaseEventType,
    Deadline,
    SlaMetricName,
    case_event_id,
)
from services.common.messages import Correction
from services.router.commands import CaseArrived, ClassifiedIn, CommandResult

if TYPE_CHECKING:
    from services.router.book import CaseRecord

ROUTER = "router"

# An event's JSON as bytes straight from the serializer: model_dump_json would make a str of it
# only for it to be encoded again (the same bytes, a copy of a few kilobytes fewer per event).
_CASE_EVENT = TypeAdapter(CaseEvent)


@dataclass(frozen=True)
class Handoff:
    """An inbox record for another floor: a message or a case that belongs there."""

    floor: str
    message: ClassifiedIn | CaseArrived


@dataclass
class Outcome:
    """What one inbox message did: the case events (``payloads`` holds each one's JSON as of
    the moment it happened; ``events`` refer to the live cases), what changed, the result."""

    events: list[CaseEvent] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    cases: set[uuid.UUID] = field(default_factory=set)
    agents: set[str] = field(default_factory=set)
    result: CommandResult | None = None
    corrections: list[Correction] = field(default_factory=list)
    notices: list[AgentNotice] = field(default_factory=list)
    duplicate: bool = False  # a message already applied: nothing changed
    fired: int = 0  # offers and deadlines a tick fired
    clocks_stopped: list[tuple[uuid.UUID, SlaMetricName]] = field(default_factory=list)
    forgotten: list[uuid.UUID] = field(default_factory=list)  # left the engine: storage deletes
    compacted: list[uuid.UUID] = field(default_factory=list)  # compressed: storage keeps as is
    handoffs: list[Handoff] = field(default_factory=list)  # sent to other floors' inboxes
    # Customers whose messages now go to another floor: storage keeps (or, once past the
    # thread window, deletes) a note saying where (book.Moved).
    moved: list[str] = field(default_factory=list)


def record_event(
    out: Outcome,
    record: CaseRecord,
    deadlines: list[Deadline],
    kind: CaseEventType,
    now: datetime,
    *,
    actor: str = ROUTER,
    agent_id: str | None = None,
    detail: dict[str, str | int | float | bool | None],
) -> None:
    """A new version of the case: its event (with the case's deadlines as of now) is added to
    ``out``."""
    case = record.case
    case.version += 1
    case.updated_at = now
    case.deadlines = deadlines
    event = CaseEvent(
        event_id=case_event_id(case.case_id, case.version),
        type=kind,
        case_id=case.case_id,
        version=case.version,
        at=now,
        actor=actor,
        agent_id=agent_id,
        detail={k: v for k, v in detail.items() if v is not None},
        case=case,
    )
    out.events.append(event)
    # The event refers to the live case; its wire form is fixed now, as of this change.
    out.payloads.append(_CASE_EVENT.dump_json(event))
