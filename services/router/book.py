"""The case book: every case the router keeps, whole or compressed, and the indexes that find
them (by thread key, by message, open case by customer, and when each is next due).

Only this module adds, moves or removes a case, so the indexes stay in step: a case is added
(``create``/``load``), read back whole from the archive (``whole``), compressed once quiet
(``compact``) and forgotten after its keep (``forget``, via ``settle``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
import zlib
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr
from sortedcontainers import SortedList

from services.common.cases import Case, CaseMessage, Deadline, SlaMetricName, case_id_for
from services.common.messages import FeedbackClassified
from services.router import sla
from services.router.outcome import Outcome

MAX_MESSAGES = 20
MAX_THREAD_KEYS = 100
# A case is stored and published whole in one record (Kafka's default largest is 1,000,000
# bytes, and a control character takes 6 bytes of JSON): the latest message is carried whole,
# earlier ones as excerpts; full texts stay on feedback.received and feedback.classified.
LATEST_TEXT_CHARS = 20_000
EARLIER_TEXT_CHARS = 1_000
EARLIER_SUBJECT_CHARS = 200


@dataclass(frozen=True, slots=True)
class ClockView:
    """A clock as the agent sees it, with its warning and due times."""

    deadline: Deadline
    due_at: datetime | None
    warning_at: datetime | None


class CaseRecord(BaseModel):
    """What the router stores per case: the case, its clocks and the commands applied."""

    model_config = ConfigDict(extra="forbid")

    case: Case
    clocks: dict[SlaMetricName, sla.SlaClock] = Field(default_factory=dict)
    commands: list[str] = Field(default_factory=list)
    # Each clock as the agent sees it, with its warning and due times, kept until the clock
    # or the calendar changes (a clock is immutable): metric -> (clock, calendar, view).
    _views: dict[SlaMetricName, tuple[Any, Any, ClockView]] = PrivateAttr(default_factory=dict)


MOVED_PREFIX = "moved:"  # storage key of a Moved note: the prefix, then the customer id


class Moved(BaseModel):
    """Where a customer's messages go now that this floor handed their message or case to
    another floor: kept for the thread window, so a follow-up the forwarder brings here
    follows them (and a handed-over case sent again is recognised)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_id: str
    floor: str
    at: datetime
    case_id: uuid.UUID | None = None  # the case handed over, if one was
    version: int = 0  # its version when handed over
    # The messages of the case handed over: one of them read again (the inbox replayed after
    # a crash) is known, although the case is no longer here.
    event_ids: tuple[uuid.UUID, ...] = ()

    def has(self, event_id: uuid.UUID) -> bool:
        """Whether the message is one of the case handed over (it opened it, or joined it)."""
        return event_id in self.event_ids or (
            self.case_id is not None and case_id_for(event_id) == self.case_id
        )


@dataclass(slots=True)
class _Archived:
    """A resolved case out of the routing state: the record compressed, and what threading a
    reply to it asks without opening it."""

    blob: bytes
    customer_id: str
    resolved_at: datetime


class DueIndex:
    """Keys by the time they are next due, earliest first; one entry per key, found and moved
    in O(log n), so a tick reads only the entries that are due, however many are held."""

    __slots__ = ("_at", "_order")

    def __init__(self) -> None:
        self._at: dict[Hashable, float] = {}
        self._order = SortedList()

    def __len__(self) -> int:
        return len(self._at)

    def __contains__(self, key: object) -> bool:
        return key in self._at

    def get(self, key: Hashable) -> float | None:
        return self._at.get(key)

    def set(self, key: Hashable, at: float | None) -> None:
        """Make ``key`` due at ``at`` (a POSIX timestamp), or not due at all (``None``)."""
        old = self._at.get(key)
        if old == at:
            return
        if old is not None:
            self._order.remove((old, key))
        if at is None:
            del self._at[key]
            return
        self._at[key] = at
        self._order.add((at, key))

    def discard(self, key: Hashable) -> None:
        self.set(key, None)

    def first(self) -> float | None:
        """The earliest time anything is due."""
        return self._order[0][0] if self._order else None

    def pop_due(self, now: float) -> Any:
        """The earliest key due at ``now`` (taken out of the index), or ``None``."""
        if not self._order or self._order[0][0] > now:
            return None
        _, key = self._order.pop(0)
        del self._at[key]
        return key

    def clear(self) -> None:
        self._at.clear()
        self._order.clear()


class CaseBook:
    """The cases of one partition and their indexes.

    ``recent_resolved``: how long a resolved case stays whole after its last change; ``keep``:
    how long after its resolution it is kept at all (compressed); ``reopen_window`` and
    ``thread_window``: which case a customer's new message joins.
    """

    def __init__(
        self,
        *,
        recent_resolved: timedelta,
        keep: timedelta,
        reopen_window: timedelta,
        thread_window: timedelta,
    ) -> None:
        self.recent_resolved = recent_resolved
        self.keep = keep
        self.reopen_window = reopen_window
        self.thread_window = thread_window
        self.records: dict[uuid.UUID, CaseRecord] = {}
        # Resolved cases out of ``records``, compressed, until they are forgotten.
        self.archive: dict[uuid.UUID, _Archived] = {}
        self.by_thread: dict[str, uuid.UUID] = {}
        self.by_event: dict[uuid.UUID, uuid.UUID] = {}
        self.open_by_customer: dict[str, uuid.UUID] = {}
        # When each case next has a clock or an offer due (whole or archived cases).
        self.due = DueIndex()
        # When each resolved case is next to be compressed or forgotten.
        self.settling = DueIndex()
        # Resolved cases read back from storage already past their keep: only their ids, to be
        # reported forgotten (and deleted from storage) by the next tick.
        self.stale: set[uuid.UUID] = set()
        # Customers handed to another floor, oldest note first (see Moved).
        self.moved: dict[str, Moved] = {}
        self._zdict: bytes | None = None

    # ------------------------------------------------------------------ reading

    def record(self, case_id: uuid.UUID) -> CaseRecord | None:
        """The case's record, whole or compressed (read back into a copy), as storage keeps it."""
        record = self.records.get(case_id)
        if record is not None:
            return record
        entry = self.archive.get(case_id)
        return self._unpack(entry.blob) if entry is not None else None

    def kept(self) -> Iterator[uuid.UUID]:
        """The ids of every case kept, whole or compressed."""
        yield from self.records
        yield from self.archive

    def knows(self, event_id: uuid.UUID, case_id: uuid.UUID) -> bool:
        """Whether a message was already applied: a case's first message gives its id, so a
        repeat is recognised by that id too, once the message has left a long case's list."""
        return event_id in self.by_event or case_id in self.records or case_id in self.archive

    def next_due(self) -> float | None:
        """The earliest time a case has a clock, an offer or a step of its own due."""
        times = [t for t in (self.due.first(), self.settling.first()) if t is not None]
        return min(times) if times else None

    def thread_case(self, customer: str, keys: list[str], now: datetime) -> uuid.UUID | None:
        """The case a customer's new message joins: one its thread keys name (open, or resolved
        within the reopen window), else their open case if recent."""
        for key in keys:
            case_id = self.by_thread.get(key)
            if case_id is None:
                continue
            record = self.records.get(case_id)
            if record is not None:
                case = record.case
                if case.customer_id != customer:
                    continue
                if case.is_open:
                    return case_id
                resolved_at = case.resolved_at
            else:
                entry = self.archive.get(case_id)
                if entry is None or entry.customer_id != customer:
                    continue
                resolved_at = entry.resolved_at
            if resolved_at and now - resolved_at <= self.reopen_window:
                return case_id
        case_id = self.open_by_customer.get(customer)
        if case_id is not None and case_id in self.records:
            case = self.records[case_id].case
            if case.is_open and now - case.updated_at <= self.thread_window:
                return case_id
        return None

    def moved_to(self, customer: str, now: datetime) -> Moved | None:
        """Where a customer's messages go, if this floor handed them on within the thread
        window."""
        note = self.moved.get(customer)
        if note is None or now - note.at > self.thread_window:
            return None
        return note

    # ------------------------------------------------------------------ changing

    def note_moved(self, note: Moved, out: Outcome) -> None:
        """A customer's messages go to another floor from now on (a note without a case keeps
        the case the customer's previous note named)."""
        previous = self.moved.pop(note.customer_id, None)  # re-inserted last: time-ordered
        if previous is not None and note.case_id is None and previous.case_id is not None:
            kept = ("case_id", "version", "event_ids")
            note = note.model_copy(update={name: getattr(previous, name) for name in kept})
        self.moved[note.customer_id] = note
        out.moved.append(note.customer_id)

    def unnote_moved(self, customer: str, out: Outcome) -> None:
        """A customer's case came (back) to this floor."""
        if self.moved.pop(customer, None) is not None:
            out.moved.append(customer)

    def expire_moved(self, now: datetime, out: Outcome) -> None:
        """Notes past the thread window are dropped (and deleted from storage)."""
        while self.moved:
            customer, note = next(iter(self.moved.items()))
            if now - note.at <= self.thread_window:
                return
            del self.moved[customer]
            out.moved.append(customer)

    def move_out(self, case_id: uuid.UUID) -> None:
        """An open case leaves for another floor: dropped with its indexes, as if forgotten,
        except that storage keeps a Moved note in its place rather than nothing."""
        record = self.records.get(case_id)
        if record is not None and self.open_by_customer.get(record.case.customer_id) == case_id:
            del self.open_by_customer[record.case.customer_id]
        self._drop(case_id)

    def clear(self) -> None:
        self.moved = {}
        self.records = {}
        self.by_thread, self.by_event, self.open_by_customer = {}, {}, {}
        self.archive = {}
        self.due.clear()
        self.settling.clear()
        self.stale = set()

    def load(self, record: CaseRecord) -> None:
        """A stored case is added with its indexes (its clocks are scheduled by the caller)."""
        case = record.case
        self.records[case.case_id] = record
        for key in case.thread_keys:
            self.by_thread[key] = case.case_id
        for message in case.messages:
            self.by_event[message.event_id] = case.case_id
        if case.is_open:
            self.open_by_customer[case.customer_id] = case.case_id
        else:
            self.settling.set(case.case_id, self.quiet_at(case).timestamp())

    def mark_stale(self, case: Case) -> None:
        """A stored case already past its keep: reported forgotten by the next tick."""
        self.stale.add(case.case_id)
        self.settling.set(case.case_id, self.keep_until(case).timestamp())

    def create(self, record: CaseRecord, event_id: uuid.UUID, keys: list[str]) -> None:
        """A new case, opened by the message ``event_id``."""
        case = record.case
        self.records[case.case_id] = record
        self.stale.discard(case.case_id)
        self.by_event[event_id] = case.case_id
        self.open_by_customer[case.customer_id] = case.case_id
        self.add_keys(case, keys)

    def add_message(self, case: Case, message: CaseMessage, keys: list[str]) -> None:
        """A message joins a case: the oldest leave its bounded list (and the message index)."""
        messages = bounded_messages([*case.messages, message])
        if len(case.messages) >= MAX_MESSAGES:
            kept = {m.event_id for m in messages}
            for dropped in case.messages:
                if (
                    dropped.event_id not in kept
                    and self.by_event.get(dropped.event_id) == case.case_id
                ):
                    del self.by_event[dropped.event_id]
        case.messages = messages
        self.by_event[message.event_id] = case.case_id
        self.add_keys(case, keys)

    def add_keys(self, case: Case, keys: list[str]) -> None:
        for key in keys:
            if key not in case.thread_keys:
                case.thread_keys = [*case.thread_keys, key][-MAX_THREAD_KEYS:]
            self.by_thread[key] = case.case_id

    def resolved(self, case: Case) -> None:
        """A case was resolved: no longer the customer's open case, compressed once quiet."""
        self.open_by_customer.pop(case.customer_id, None)
        self.settling.set(case.case_id, self.quiet_at(case).timestamp())

    def reopened(self, case: Case) -> None:
        self.open_by_customer[case.customer_id] = case.case_id
        self.settling.discard(case.case_id)

    # ------------------------------------------------------------------ resolved cases

    def quiet_at(self, case: Case) -> datetime:
        """When a resolved case leaves ``records`` for the archive: a while after its last
        change."""
        return case.updated_at + self.recent_resolved

    def keep_until(self, case: Case) -> datetime:
        """When a resolved case is forgotten (if no clock of it is still to fire)."""
        return (case.resolved_at or case.updated_at) + self.keep

    def whole(self, case_id: uuid.UUID) -> CaseRecord | None:
        """The record of a case to work on: a compressed one is read back into ``records``
        (and compressed again once it has been quiet for a while)."""
        record = self.records.get(case_id)
        if record is not None:
            return record
        entry = self.archive.pop(case_id, None)
        if entry is None:
            return None
        record = self._unpack(entry.blob)
        self.records[case_id] = record
        self.settling.set(case_id, self.quiet_at(record.case).timestamp())
        return record

    def compact(self, record: CaseRecord) -> None:
        case = record.case
        del self.records[case.case_id]
        self.archive[case.case_id] = _Archived(
            blob=self._pack(record),
            customer_id=case.customer_id,
            resolved_at=case.resolved_at or case.updated_at,
        )
        self.settling.set(case.case_id, self.keep_until(case).timestamp())

    def forget(self, case_id: uuid.UUID, out: Outcome) -> None:
        """The case leaves the engine (its events stay on ``cases.events``); the worker deletes
        it from its table."""
        self._drop(case_id)
        out.forgotten.append(case_id)

    def _drop(self, case_id: uuid.UUID) -> None:
        record = self.records.pop(case_id, None)
        if record is None:
            entry = self.archive.pop(case_id, None)
            record = self._unpack(entry.blob) if entry is not None else None
        if record is not None:
            case = record.case
            for key in case.thread_keys:
                if self.by_thread.get(key) == case_id:
                    del self.by_thread[key]
            for message in case.messages:
                if self.by_event.get(message.event_id) == case_id:
                    del self.by_event[message.event_id]
        self.stale.discard(case_id)
        self.due.discard(case_id)
        self.settling.discard(case_id)

    def settle(self, case_id: uuid.UUID, now: datetime, out: Outcome) -> None:
        """A resolved case's step is due: compress it once quiet, forget it once past its keep
        and with no clock left to fire."""
        if case_id in self.stale:
            self.forget(case_id, out)
            return
        record = self.records.get(case_id)
        if record is not None:
            case = record.case
            if case.is_open:
                return  # reopened: settled again when resolved
            quiet = self.quiet_at(case)
            if quiet > now:
                self.settling.set(case_id, quiet.timestamp())
                return
            if self.keep_until(case) <= now and case_id not in self.due:
                self.forget(case_id, out)
                return
            self.compact(record)
            out.compacted.append(case_id)
            return
        entry = self.archive.get(case_id)
        if entry is None:
            return
        until = entry.resolved_at + self.keep
        if until > now:
            self.settling.set(case_id, until.timestamp())
        elif case_id not in self.due:
            self.forget(case_id, out)
        # else: the clock's tick reads the case back, and it is settled again after that.

    def _pack(self, record: CaseRecord) -> bytes:
        raw = record.model_dump_json().encode()
        if self._zdict is None:
            self._zdict = _zdict_from(record)
        packer = zlib.compressobj(6, zdict=self._zdict)
        return packer.compress(raw) + packer.flush()

    def _unpack(self, blob: bytes) -> CaseRecord:
        assert self._zdict is not None
        unpacker = zlib.decompressobj(zdict=self._zdict)
        return CaseRecord.model_validate_json(unpacker.decompress(blob) + unpacker.flush())


def thread_keys(fc: FeedbackClassified) -> list[str]:
    """Keys that tie a message to earlier ones (e-mail ids, conversation ids), each scoped to
    the platform and customer: a stranger who quotes another customer's message id, or a
    conversation id another customer used, does not join that customer's case."""
    event = fc.feedback
    thread = event.thread
    refs = [
        f"msg\x00{ref.strip()}"
        for ref in (thread.in_reply_to, *thread.references, thread.message_id)
        if ref and ref.strip()
    ]
    if thread.conversation_id:
        refs.append(f"conv\x00{event.channel.value}\x00{thread.conversation_id}")
    scope = f"{event.source.platform}\x00{event.customer.id}"
    # Hashed: a key has a fixed size whatever the ids, and the event carries no raw ids.
    keys = ("t:" + hashlib.sha256(f"{scope}\x00{ref}".encode()).hexdigest()[:32] for ref in refs)
    return list(dict.fromkeys(keys))


def case_message(fc: FeedbackClassified) -> CaseMessage:
    """A classified message as a case carries it (the text bounded)."""
    event = fc.feedback
    social = event.social
    return CaseMessage(
        event_id=event.event_id,
        channel=event.channel,
        received_at=event.received_at,
        subject=event.subject,
        text=event.text[:LATEST_TEXT_CHARS],
        text_chars=len(event.text) if len(event.text) > LATEST_TEXT_CHARS else None,
        sentiment=fc.sentiment,
        sentiment_score=fc.sentiment_score,
        category=fc.category,
        difficult=fc.difficult,
        needs_review=fc.needs_review,
        public=bool(social and social.public),
        reach=(social.reach or social.followers) if social else None,
    )


def _excerpt(message: CaseMessage, text_chars: int, subject_chars: int) -> CaseMessage:
    subject = message.subject
    if len(message.text) <= text_chars and (subject is None or len(subject) <= subject_chars):
        return message
    return message.model_copy(
        update={
            "text": message.text[:text_chars],
            "text_chars": message.text_chars or len(message.text),
            "subject": subject[:subject_chars] if subject is not None else None,
        }
    )


def bounded_messages(messages: list[CaseMessage]) -> list[CaseMessage]:
    """The newest MAX_MESSAGES messages: the latest whole, the others as excerpts."""
    kept = messages[-MAX_MESSAGES:]
    earlier = [_excerpt(m, EARLIER_TEXT_CHARS, EARLIER_SUBJECT_CHARS) for m in kept[:-1]]
    return [*earlier, kept[-1]]


def _zdict_from(record: CaseRecord) -> bytes:
    """A zlib preset dictionary for compressing case records: the shape of one (its field
    names and the values cases share) without its texts. Kept for the engine's lifetime, as
    every compressed record needs it back."""
    sample = record.model_dump(mode="json")
    case = sample["case"]
    case["subject"] = case["resolution_note"] = None
    for message in case["messages"]:
        message["text"] = ""
        message["subject"] = None
    return json.dumps(sample, separators=(",", ":")).encode()
