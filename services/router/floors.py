"""Floors: independent groups of teams, each routed by its own engine and inbox partition.

A roster may declare several floors (``Roster.floors``); each team works on one. The router's
inbox has a partition per floor, and the worker that holds a partition routes that floor with
an engine that knows the floor's teams and agents only. What belongs to another floor travels
there as an inbox record (a :class:`Handoff`), never as shared state:

* a classified message whose tags name another floor's team, and that joins no case here, is
  handed on once (``ClassifiedIn.handed_from``), and the customer is noted as gone there;
* a case transferred or relabelled to another floor's team leaves this floor with its clocks
  (``CaseArrived``); its customer is noted as gone there, so a follow-up the forwarder still
  brings here follows the case.

The notes (:class:`services.router.book.Moved`) last the thread window, are stored with the
cases, and also recognise a handed-over case sent again after a crash.

Pure functions over the engine: no I/O, tested without Kafka.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from services.common.cases import CaseState, case_id_for
from services.common.messages import Category
from services.router.book import CaseRecord, Moved, thread_keys
from services.router.commands import CaseArrived, ClassifiedIn
from services.router.outcome import Handoff, Outcome

if TYPE_CHECKING:
    from services.router.engine import Engine


def left_with_its_case(e: Engine, message: ClassifiedIn) -> bool:
    """Whether a classified message belongs to a case this floor handed to another: applied
    before the case left, and read again now (the inbox replayed after a crash). It changes
    nothing here; the case, with the message, is on the other floor."""
    event = message.feedback.feedback
    note = e.book.moved.get(event.customer.id)
    return note is not None and note.has(event.event_id)


def message_floor(e: Engine, message: ClassifiedIn, now: datetime) -> str | None:
    """The floor a classified message belongs to when not this one; None to apply it here.

    A message that joins a case here (its thread, or the customer's open case) stays. So does
    one already handed on by another floor: a message is handed on at most once, so floors
    that disagree (a roster changed on one worker only) cannot pass it back and forth."""
    if len(e.roster.floor_ids) == 1 or message.handed_from is not None:
        return None
    fc = message.feedback
    event = fc.feedback
    if e.book.knows(event.event_id, case_id_for(event.event_id)):
        return None
    if e.book.thread_case(event.customer.id, thread_keys(fc), now) is not None:
        return None
    note = e.book.moved_to(event.customer.id, now)
    if note is not None and note.floor != e.floor:
        return note.floor
    try:
        floor = e.roster.floor_for(Category(fc.category.label))
    except ValueError:
        return None  # an unknown category: the default team here takes it
    return floor if floor != e.floor else None


def hand_on(e: Engine, message: ClassifiedIn, floor: str, now: datetime, out: Outcome) -> None:
    """Send a classified message to its floor; the customer's next messages follow it."""
    out.handoffs.append(Handoff(floor, message.model_copy(update={"handed_from": e.floor})))
    customer = message.feedback.feedback.customer.id
    e.book.note_moved(Moved(customer_id=customer, floor=floor, at=now), out)


def move_case(e: Engine, record: CaseRecord, floor: str, now: datetime, out: Outcome) -> None:
    """Hand an open case, already taken from its agent and given its new team, to that team's
    floor: it leaves this engine (its stored record becomes a note saying where it went)."""
    case = record.case
    for queue in e.assign.queues.values():
        queue.discard(case.case_id)
    e.book.move_out(case.case_id)
    out.cases.discard(case.case_id)
    out.forgotten.append(case.case_id)
    note = Moved(
        customer_id=case.customer_id,
        floor=floor,
        at=now,
        case_id=case.case_id,
        version=case.version,
        event_ids=tuple(message.event_id for message in case.messages),
    )
    e.book.note_moved(note, out)
    arrived = CaseArrived(
        at=now,
        from_floor=e.floor,
        case=case,
        clocks=dict(record.clocks),
        commands=list(record.commands),
    )
    out.handoffs.append(Handoff(floor, arrived))


def arrive(e: Engine, message: CaseArrived, now: datetime, out: Outcome) -> None:
    """A case handed over by another floor joins this one and is routed in its team."""
    case = message.case.model_copy(deep=True)
    note = e.book.moved.get(case.customer_id)
    sent_again = note is not None and note.case_id == case.case_id and note.version >= case.version
    if sent_again or e.book.record(case.case_id) is not None:
        out.duplicate = True
        return
    if case.team not in e.teams:  # the rosters disagree: this floor's default team takes it
        case.team = e.local_roster.default_team
    e.book.unnote_moved(case.customer_id, out)
    case.state = CaseState.QUEUED
    case.offer = None
    case.assignee = None
    record = CaseRecord(case=case, clocks=dict(message.clocks), commands=list(message.commands))
    e.book.load(record)
    e.clocks.schedule(record, e.book.due)
    out.cases.add(case.case_id)
    e.assign.escalate_for_authority(record, now, out)
    e.assign.route(record, now, out, rule_prefix=f"handed over by floor {message.from_floor}")
