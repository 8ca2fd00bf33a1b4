"""The router's state machine: cases, agents, queues and clocks, changed only by inbox messages.

``Engine.apply`` takes one inbox message (classified feedback, a command or a tick) with the
time it happened and returns the case events it caused, the cases and agents it changed and,
for a command, the result. It does no I/O and reads no clock, so it is tested without Kafka
and a replay of the inbox gives the same decisions.

The engine holds what routing needs, so its memory grows with the work in hand, not with
history: open cases whole; a resolved case whole for ``recent_resolved`` after its last change
(listed, on the floor), then compressed (served by id, reopened by a reply, scored, relabelled)
until ``max(reopen_window, retention)`` after its resolution, then forgotten (the
``Outcome.forgotten`` ids are deleted from the worker's table; every event stays
on ``cases.events``). Deadlines and those steps are kept in time-ordered indexes, so a tick
looks only at what is due.
"""

from __future__ import annotations

import hashlib
import json
import uuid
import zlib
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr
from sortedcontainers import SortedList

from services.common.cases import (
    TIER_RANK,
    AgentNotice,
    AgentTier,
    AwayReason,
    Candidate,
    Case,
    CaseEvent,
    CaseEventType,
    CaseMessage,
    CaseState,
    Deadline,
    IncidentTag,
    Offer,
    Presence,
    Priority,
    RemedyKind,
    Review,
    RoutingDecision,
    SlaMetricName,
    agent_notice_id,
    case_event_id,
    case_id_for,
)
from services.common.messages import (
    Category,
    Correction,
    CustomerTier,
    DifficultType,
    Facts,
    FeedbackClassified,
)
from services.router import sla
from services.router.commands import (
    Action,
    ClassifiedIn,
    Command,
    CommandResult,
    Inbound,
    IncidentTagged,
    Labels,
    Status,
    Tick,
)
from services.router.guidance import HOSTILE, covers, estimate_remedy, handling_guidance
from services.router.priority import (
    PriorityWeights,
    band,
    band_floor,
    raised,
    score_components,
)
from services.router.roster import AgentProfile, ReviewPolicy, Roster, hash_token
from services.router.routing import (
    ANY_LANGUAGE,
    AgentIndex,
    AgentState,
    QueueOrder,
    RoutingRules,
    TeamQueue,
    case_weight,
    exclusion,
)

ROUTER = "router"
CORRECTION_NAMESPACE = uuid.UUID("0f4d1c52-7a0e-4b8e-9a43-3d2f6c1b9e21")
MAX_MESSAGES = 20
MAX_ROUTING_LOG = 20
MAX_COMMAND_IDS = 50
TOP_CANDIDATES = 5
MAX_THREAD_KEYS = 100
# A case is stored and published whole in one record (Kafka's default largest is 1,000,000
# bytes, and a control character takes 6 bytes of JSON): the latest message is carried whole,
# earlier ones as excerpts; full texts stay on feedback.received and feedback.classified.
LATEST_TEXT_CHARS = 20_000
EARLIER_TEXT_CHARS = 1_000
EARLIER_SUBJECT_CHARS = 200
MAX_FACTS = 50


class EngineSettings(BaseModel):
    """Timings and rules of the router (loaded from the router's settings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    offer_timeout: timedelta = timedelta(seconds=60)
    thread_window: timedelta = Field(
        default=timedelta(hours=24),
        description="A customer's new message joins their open case younger than this.",
    )
    reopen_window: timedelta = Field(
        default=timedelta(days=7),
        description="A reply to a case resolved this recently reopens it.",
    )
    retention: timedelta = Field(
        default=timedelta(days=7),
        description="Resolved cases are kept (compressed) this long after resolution, or the "
        "reopen window if longer; then they are forgotten.",
    )
    recent_resolved: timedelta = Field(
        default=timedelta(hours=1),
        description="A resolved case stays whole (listed in ``records``) this long after its "
        "last change; then it is kept compressed.",
    )
    hostile_weight: float = 2.0
    max_hostile_streak: int = 2
    lapses_before_away: int = Field(
        default=2,
        ge=0,
        description="Offers in a row an available agent lets lapse before the router sets them "
        "away (0: never).",
    )
    weights: PriorityWeights = PriorityWeights()
    queue_order: QueueOrder = Field(
        default=QueueOrder.RISK,
        description="Order of the team queues: breach risk, or priority score plus aging.",
    )


@dataclass(frozen=True, slots=True)
class _ClockView:
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
    _views: dict[SlaMetricName, tuple[Any, Any, _ClockView]] = PrivateAttr(default_factory=dict)


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


class AgentRecord(BaseModel):
    """What the router stores per agent besides the load, which it derives from the cases."""

    model_config = ConfigDict(extra="forbid")

    profile: AgentProfile
    presence: Presence
    presence_since: datetime | None = None
    hostile_streak: int = 0
    last_assigned_at: datetime | None = None
    removed: bool = False
    commands: list[str] = Field(default_factory=list)
    lapsed_offers: int = 0
    away_reason: AwayReason | None = None


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


class Engine:
    """All routing state of one partition, and the rules that change it."""

    def __init__(self, roster: Roster, config: sla.SlaConfig, settings: EngineSettings) -> None:
        self.roster = roster
        self.config = config
        self.settings = settings
        self.rules = RoutingRules(
            hostile_weight=settings.hostile_weight, max_hostile_streak=settings.max_hostile_streak
        )
        for team in roster.teams:
            if team.calendar not in config.calendars:
                raise sla.SlaConfigError(
                    f"team '{team.id}' uses calendar '{team.calendar}', which is not defined"
                )
        self.teams = {team.id: team for team in roster.teams}
        self.configured = {profile.id: profile for profile in roster.agents}
        self.records: dict[uuid.UUID, CaseRecord] = {}
        self.agents: dict[str, AgentState] = {}
        self.agent_records: dict[str, AgentRecord] = {}
        self.index = AgentIndex()
        self.queues: dict[str, TeamQueue] = {
            team.id: TeamQueue(settings.weights.aging_points_per_minute, settings.queue_order)
            for team in roster.teams
        }
        self.by_thread: dict[str, uuid.UUID] = {}
        self.by_event: dict[uuid.UUID, uuid.UUID] = {}
        self.open_by_customer: dict[str, uuid.UUID] = {}
        # Resolved cases out of ``records``, compressed, until they are forgotten.
        self.archive: dict[uuid.UUID, _Archived] = {}
        # When each case next has a clock or an offer due (whole or archived cases).
        self._clocks = DueIndex()
        # When each resolved case is next to be compressed or forgotten.
        self._settling = DueIndex()
        # Resolved cases read back from storage already past their keep: only their ids, to be
        # reported forgotten (and deleted from storage) by the next tick.
        self._stale: set[uuid.UUID] = set()
        self._zdict: bytes | None = None
        self.reset(records=(), agents=())

    # ------------------------------------------------------------------ state

    def reset(self, *, records: Iterable[CaseRecord], agents: Iterable[AgentRecord]) -> None:
        """Load stored state (after a restart or rebalance); derived indexes are rebuilt.

        ``records`` are every case the storage holds. Resolved cases are compressed or dropped
        at once as of the latest change among them (the router's time when it stopped); what
        is dropped is reported in ``Outcome.forgotten`` by the next tick.
        """
        self.records = {}
        self.agent_records = {p.id: _fresh_agent(p) for p in self.roster.agents}
        for record in agents:
            # The roster file says who an agent is, their token and tier (editing it revokes or
            # rotates a token); the stored record keeps what changed at runtime.
            configured = self.configured.get(record.profile.id)
            if configured is not None:
                profile = _with_identity(record.profile, configured)
                self.agent_records[configured.id] = record.model_copy(update={"profile": profile})
        self.agents = {}
        self.index = AgentIndex()
        for record in self.agent_records.values():
            if not record.removed:
                self.agents[record.profile.id] = _state_of(record)
        for queue in self.queues.values():
            for case_id in list(queue):
                queue.discard(case_id)
        self.by_thread, self.by_event, self.open_by_customer = {}, {}, {}
        self.archive = {}
        self._clocks.clear()
        self._settling.clear()
        self._stale = set()
        self._roster_changed()
        loaded = list(records)
        latest = max((r.case.updated_at for r in loaded), default=None)
        for case_record in loaded:
            case = case_record.case
            if (
                latest is not None
                and case.state == CaseState.RESOLVED
                and self._quiet_at(case) <= latest
                and self._keep_until(case) <= latest
                and self._next_due_of(case_record) is None
            ):
                self._stale.add(case.case_id)
                self._settling.set(case.case_id, self._keep_until(case).timestamp())
                continue
            self._load(case_record)
            if latest is not None and not case.is_open and self._quiet_at(case) <= latest:
                self._compact(case_record)
        for agent in self.agents.values():
            self.index.update(agent, self.rules)

    def _load(self, record: CaseRecord) -> None:
        case = record.case
        self.records[case.case_id] = record
        for key in case.thread_keys:
            self.by_thread[key] = case.case_id
        for message in case.messages:
            self.by_event[message.event_id] = case.case_id
        if case.is_open:
            self.open_by_customer[case.customer_id] = case.case_id
        else:
            self._settling.set(case.case_id, self._quiet_at(case).timestamp())
        holder = case.offer.agent_id if case.offer else case.assignee
        if case.is_open and holder and holder in self.agents:
            self._hold(self.agents[holder], case)
        if case.state == CaseState.QUEUED and case.team in self.queues:
            self._queue(case)
        self._schedule(record)

    def case(self, case_id: uuid.UUID) -> Case | None:
        """The case as it is now, whole or compressed (a compressed one is read back into a
        copy, which is not the engine's)."""
        record = self.record(case_id)
        return record.case if record else None

    def record(self, case_id: uuid.UUID) -> CaseRecord | None:
        """The case's record, whole or compressed (read back into a copy), as storage keeps it."""
        record = self.records.get(case_id)
        if record is not None:
            return record
        entry = self.archive.get(case_id)
        return self._unpack(entry.blob) if entry is not None else None

    def kept(self) -> Iterator[uuid.UUID]:
        """The ids of every case the engine keeps, whole or compressed."""
        yield from self.records
        yield from self.archive

    def agent_record(self, agent_id: str) -> AgentRecord | None:
        return self.agent_records.get(agent_id)

    def next_due(self) -> datetime | None:
        """The earliest time a tick has work (offer expiry, clock, or a resolved case to
        compress or forget), if any."""
        times = [t for t in (self._clocks.first(), self._settling.first()) if t is not None]
        return datetime.fromtimestamp(min(times), UTC) if times else None

    # ------------------------------------------------------------------ resolved cases

    def _quiet_at(self, case: Case) -> datetime:
        """When a resolved case leaves ``records`` for the archive: a while after its last
        change."""
        return case.updated_at + self.settings.recent_resolved

    def _keep_until(self, case: Case) -> datetime:
        """When a resolved case is forgotten (if no clock of it is still to fire)."""
        keep = max(self.settings.reopen_window, self.settings.retention)
        return (case.resolved_at or case.updated_at) + keep

    def _whole(self, case_id: uuid.UUID) -> CaseRecord | None:
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
        self._settling.set(case_id, self._quiet_at(record.case).timestamp())
        return record

    def _compact(self, record: CaseRecord) -> None:
        case = record.case
        del self.records[case.case_id]
        self.archive[case.case_id] = _Archived(
            blob=self._pack(record),
            customer_id=case.customer_id,
            resolved_at=case.resolved_at or case.updated_at,
        )
        self._settling.set(case.case_id, self._keep_until(case).timestamp())

    def _forget(self, case_id: uuid.UUID, out: Outcome) -> None:
        """The case leaves the engine (its events stay on ``cases.events``); the worker deletes
        it from its table."""
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
        self._stale.discard(case_id)
        self._clocks.discard(case_id)
        self._settling.discard(case_id)
        out.forgotten.append(case_id)

    def _settle(self, case_id: uuid.UUID, now: datetime, out: Outcome) -> None:
        """A resolved case's step is due: compress it once quiet, forget it once past its keep
        and with no clock left to fire."""
        if case_id in self._stale:
            self._forget(case_id, out)
            return
        record = self.records.get(case_id)
        if record is not None:
            case = record.case
            if case.is_open:
                return  # reopened: settled again when resolved
            quiet = self._quiet_at(case)
            if quiet > now:
                self._settling.set(case_id, quiet.timestamp())
                return
            if self._keep_until(case) <= now and case_id not in self._clocks:
                self._forget(case_id, out)
                return
            self._compact(record)
            out.compacted.append(case_id)
            return
        entry = self.archive.get(case_id)
        if entry is None:
            return
        until = entry.resolved_at + max(self.settings.reopen_window, self.settings.retention)
        if until > now:
            self._settling.set(case_id, until.timestamp())
        elif case_id not in self._clocks:
            self._forget(case_id, out)
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

    # ------------------------------------------------------------------ entry point

    def apply(self, message: Inbound, now: datetime) -> Outcome:
        """Apply one inbox message at ``now`` (a timezone-aware time)."""
        if now.tzinfo is not UTC:
            if now.utcoffset() is None:
                raise ValueError("now must be timezone-aware")
            now = now.astimezone(UTC)
        out = Outcome()
        if isinstance(message, ClassifiedIn):
            self._on_feedback(message.feedback, now, out)
        elif isinstance(message, Command):
            out.result = self._on_command(message, now, out)
        elif isinstance(message, Tick):
            self._on_tick(now, out)
        return out

    # ------------------------------------------------------------------ feedback

    def _on_feedback(self, fc: FeedbackClassified, now: datetime, out: Outcome) -> None:
        event = fc.feedback
        new_case_id = case_id_for(event.event_id)
        # A case's first message gives its id: a repeat is recognised by that id too, once the
        # message has left a long case's bounded list.
        if (
            event.event_id in self.by_event
            or new_case_id in self.records
            or new_case_id in self.archive
        ):
            out.duplicate = True
            return
        keys = _thread_keys(fc)
        found = self._thread_case(fc, keys, now)
        message = _case_message(fc)
        if found is None:
            self._create(fc, message, keys, now, out, case_id=new_case_id)
            return
        record = self._whole(found)
        assert record is not None
        case = record.case
        messages = _bounded_messages([*case.messages, message])
        if len(case.messages) >= MAX_MESSAGES:
            kept = {m.event_id for m in messages}
            for dropped in case.messages:
                if dropped.event_id not in kept and self.by_event.get(dropped.event_id) == found:
                    del self.by_event[dropped.event_id]
        case.messages = messages
        self.by_event[event.event_id] = case.case_id
        self._add_keys(case, keys)
        self._retag(record, fc, now, out)
        if fc.needs_review and (case.review is None or case.review.status == "done"):
            case.review = Review(status="pending", since=now)
        out.cases.add(case.case_id)
        if case.state == CaseState.RESOLVED:
            self._reopen(record, now, out)
            return
        self._emit(record, CaseEventType.MESSAGE_ADDED, now, out, actor="customer")
        if case.state == CaseState.WAITING_ON_CUSTOMER:
            self._resume(record, now, out, actor="customer")
        if case.first_response_at is not None:
            self._start_clock(record, SlaMetricName.NEXT_RESPONSE, now, restart=False)
            if case.state == CaseState.QUEUED:
                self._queue(case)  # a new deadline: filed again
        self._schedule(record)

    def _thread_case(
        self, fc: FeedbackClassified, keys: list[str], now: datetime
    ) -> uuid.UUID | None:
        customer = fc.feedback.customer.id
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
            if resolved_at and now - resolved_at <= self.settings.reopen_window:
                return case_id
        case_id = self.open_by_customer.get(fc.feedback.customer.id)
        if case_id is not None and case_id in self.records:
            case = self.records[case_id].case
            if case.is_open and now - case.updated_at <= self.settings.thread_window:
                return case_id
        return None

    def _create(
        self,
        fc: FeedbackClassified,
        message: CaseMessage,
        keys: list[str],
        now: datetime,
        out: Outcome,
        *,
        case_id: uuid.UUID,
    ) -> None:
        event = fc.feedback
        category = Category(fc.category.label)
        difficult = DifficultType(fc.difficult.label)
        remedy = estimate_remedy(category, fc.facts)
        tier = event.customer.tier or CustomerTier.STANDARD
        components = score_components(
            sentiment_score=fc.sentiment_score,
            difficult=difficult,
            tier=tier,
            category=category,
            public=message.public,
            reach=message.reach,
            repeat_complainer=fc.history.repeat_complainer,
            remedy=remedy,
            weights=self.settings.weights,
        )
        score = round(sum(c.points for c in components), 2)
        priority = band(score, self.settings.weights)
        language = fc.facts.language or _base_language(event.customer.language)
        case = Case(
            case_id=case_id,
            state=CaseState.QUEUED,
            team=self.roster.team_for(category),
            channel=event.channel,
            customer_id=event.customer.id,
            customer_tier=tier,
            platform=event.source.platform,
            language=language,
            subject=event.subject,
            messages=[message],
            category=category,
            difficult=difficult,
            hostile=difficult in HOSTILE,
            guidance=handling_guidance(difficult),
            priority=priority,
            base_priority=priority,
            priority_score=score,
            priority_components=components,
            facts=_bounded_facts(fc.facts),
            history=fc.history,
            remedy=remedy,
            created_at=now,
            updated_at=now,
        )
        record = CaseRecord(case=case)
        self.records[case.case_id] = record
        self._stale.discard(case.case_id)
        self.by_event[event.event_id] = case.case_id
        self.open_by_customer[case.customer_id] = case.case_id
        self._add_keys(case, keys)
        if fc.needs_review:
            team = self.teams.get(case.team)
            hold = team is not None and team.review == ReviewPolicy.HOLD
            case.review = Review(status="pending", since=now, hold=hold)
        self._start_clock(record, SlaMetricName.FIRST_RESPONSE, now)
        self._start_clock(record, SlaMetricName.RESOLUTION, now)
        if _held(case):
            self._start_clock(record, SlaMetricName.REVIEW, now)
        out.cases.add(case.case_id)
        self._emit(record, CaseEventType.CREATED, now, out, actor="customer")
        self._escalate_for_authority(record, now, out)
        self._route(record, now, out)

    def _retag(
        self, record: CaseRecord, fc: FeedbackClassified, now: datetime, out: Outcome
    ) -> None:
        """A new message can make a case more urgent or more hostile, never less."""
        case = record.case
        difficult = DifficultType(fc.difficult.label)
        if difficult in HOSTILE and not case.hostile:
            # The load an agent carries for a case is fixed when it is offered; an agent not
            # marked for hostile customers hands the case back.
            case.hostile = True
            case.difficult = difficult
            case.guidance = handling_guidance(difficult)
            if case.state == CaseState.QUEUED:
                self._queue(case)
            holder = self._holder(case)
            if case.is_open and holder is not None and not holder.profile.hostile:
                self._return_to_queue(record, now, out, reason="customer turned hostile")
        components = score_components(
            sentiment_score=fc.sentiment_score,
            difficult=difficult,
            tier=case.customer_tier,
            category=case.category,
            public=bool(fc.feedback.social and fc.feedback.social.public),
            reach=fc.feedback.social.reach if fc.feedback.social else None,
            repeat_complainer=fc.history.repeat_complainer,
            remedy=case.remedy,
            weights=self.settings.weights,
        )
        score = round(sum(c.points for c in components), 2)
        if score > case.priority_score:
            case.priority_score = score
            case.priority_components = components
            new = band(score, self.settings.weights)
            if list(Priority).index(new) < list(Priority).index(case.priority):
                case.priority = new
            if case.state == CaseState.QUEUED:
                self._queue(case)

    # ------------------------------------------------------------------ routing

    def _route(
        self,
        record: CaseRecord,
        now: datetime,
        out: Outcome,
        *,
        prefer: str | None = None,
        rule_prefix: str = "",
    ) -> None:
        """Offer the case to the best eligible agent, or queue it."""
        case = record.case
        if _held(case):
            self._enqueue(record, now, out)
            return
        chosen, decision = self._choose(case, now, prefer=prefer)
        if rule_prefix:
            decision.rule = f"{rule_prefix}; {decision.rule}"
        case.routing = [*case.routing, decision][-MAX_ROUTING_LOG:]
        if chosen is None:
            self._enqueue(record, now, out)
            return
        self._offer(record, chosen, now, out)

    def _choose(
        self, case: Case, now: datetime, *, prefer: str | None = None
    ) -> tuple[AgentState | None, RoutingDecision]:
        if prefer is not None and prefer in self.agents:
            agent = self.agents[prefer]
            if exclusion(agent, case, self.rules) is None:
                return agent, self._decision(
                    case, now, "offered", agent, "previous agent of the case", [agent], {}
                )
        language_required = case.language is None or self._team_speaks(case)
        languages = (
            [case.language]
            if language_required and case.language is not None
            else sorted(self._languages.get(case.team, ()))
        )
        eligible: list[tuple[int, AgentState]] = []
        excluded: dict[str, int] = {}
        for proficiency, agent_id in self.index.candidates(
            case.team,
            case.category,
            case.channel,
            case.required_tier,
            languages=languages,
            hostile=case.hostile,
        ):
            agent = self.agents[agent_id]
            reason = exclusion(agent, case, self.rules, language_required=language_required)
            if reason is None:
                eligible.append((proficiency, agent))
                if len(eligible) >= TOP_CANDIDATES:
                    break
            else:
                excluded[reason] = excluded.get(reason, 0) + 1
        if not eligible:
            inspected = sum(excluded.values())
            others = self._team_size.get(case.team, 0) - inspected
            if others > 0:
                # Not in the channel's lists: unavailable, full on the channel, or unskilled.
                excluded["unavailable_full_or_unskilled"] = others
            return None, self._decision(
                case, now, "queued", None, "no eligible agent", [], excluded
            )
        # Within the lowest sufficient tier the index order is already proficiency, load, idle.
        best_tier = min(TIER_RANK[a.profile.tier] for _, a in eligible)
        same_tier = [(p, a) for p, a in eligible if TIER_RANK[a.profile.tier] == best_tier]
        chosen = same_tier[0][1]
        rule = "lowest sufficient tier, best proficiency, least loaded, longest idle"
        if not language_required:
            rule += f" (no agent of the team speaks '{case.language}')"
        return chosen, self._decision(
            case, now, "offered", chosen, rule, [a for _, a in eligible], excluded
        )

    def _queue(self, case: Case) -> None:
        if _held(case):  # offered once reviewed
            self.queues[case.team].discard(case.case_id)
            return
        language = case.language if case.language and self._team_speaks(case) else ANY_LANGUAGE
        # The clocks as of now (``case.deadlines`` is refreshed only when an event is emitted).
        record = self.records.get(case.case_id)
        deadlines = self.deadlines(record) if record is not None else None
        self.queues[case.team].add(case, language, deadlines)

    def _team_speaks(self, case: Case) -> bool:
        return case.language in self._languages.get(case.team, set())

    def agent_by_token(self, token: str) -> AgentProfile | None:
        """The agent whose API token this is (tokens are kept only as sha256 digests)."""
        agent_id = self._by_token.get(hash_token(token))
        state = self.agents.get(agent_id) if agent_id else None
        return state.profile if state else None

    def _roster_changed(self) -> None:
        """Per-team facts about the roster that routing asks for on every decision, and the
        token index the API authenticates with."""
        self._by_token: dict[str, str] = {
            a.profile.token_sha256: a.id for a in self.agents.values() if a.profile.token_sha256
        }
        self._languages: dict[str, set[str]] = {}
        self._team_size: dict[str, int] = {}
        self._authority: dict[tuple[str, AgentTier], dict[RemedyKind, float]] = {}
        for agent in self.agents.values():
            profile = agent.profile
            self._team_size[profile.team] = self._team_size.get(profile.team, 0) + 1
            self._languages.setdefault(profile.team, set()).update(profile.languages)
            limits = self._authority.setdefault((profile.team, profile.tier), {})
            for kind, amount in profile.authority.items():
                limits[kind] = max(limits.get(kind, 0.0), amount)
        # Who speaks what may have changed: waiting cases are filed again.
        for queue in self.queues.values():
            for case_id in list(queue):
                record = self.records.get(case_id)
                if record is not None and record.case.state == CaseState.QUEUED:
                    self._queue(record.case)

    def _decision(
        self,
        case: Case,
        now: datetime,
        outcome: Literal["offered", "queued", "assigned"],
        agent: AgentState | None,
        rule: str,
        eligible: list[AgentState],
        excluded: dict[str, int],
    ) -> RoutingDecision:
        return RoutingDecision(
            at=now,
            outcome=outcome,
            agent_id=agent.id if agent else None,
            rule=rule,
            eligible=len(eligible),
            candidates=[
                Candidate(
                    agent_id=a.id,
                    tier=a.profile.tier,
                    proficiency=a.profile.skills.get(case.category, 0),
                    load=round(a.utilisation, 3),
                    idle_since=a.last_assigned_at or a.presence_since,
                )
                for a in eligible[:TOP_CANDIDATES]
            ],
            excluded=excluded,
        )

    def _offer(self, record: CaseRecord, agent: AgentState, now: datetime, out: Outcome) -> None:
        case = record.case
        self.queues[case.team].discard(case.case_id)
        case.state = CaseState.OFFERED
        case.offer = Offer(
            agent_id=agent.id, offered_at=now, expires_at=now + self.settings.offer_timeout
        )
        # Counted when offered, so outstanding offers cannot add up past the limit.
        agent.hostile_streak = agent.hostile_streak + 1 if case.hostile else 0
        self._hold(agent, case)
        self._touch_agent(agent, out)
        out.cases.add(case.case_id)
        self._emit(record, CaseEventType.OFFERED, now, out, agent_id=agent.id)
        self._schedule(record)

    def _enqueue(self, record: CaseRecord, now: datetime, out: Outcome) -> None:
        case = record.case
        case.state = CaseState.QUEUED
        case.offer = None
        if case.queued_at is None:
            case.queued_at = now
        self._queue(case)
        out.cases.add(case.case_id)
        self._emit(record, CaseEventType.QUEUED, now, out)
        self._schedule(record)

    def _drain(self, agent: AgentState, now: datetime, out: Outcome) -> None:
        """Offer waiting cases to an agent with room: the highest eligible first."""
        if agent.presence != Presence.AVAILABLE:
            return
        queue = self.queues.get(agent.profile.team)
        if queue is None:
            return

        def eligible(case_id: uuid.UUID) -> bool:
            record = self.records.get(case_id)
            if record is None:
                return False
            case = record.case
            language_required = case.language is None or self._team_speaks(case)
            return exclusion(agent, case, self.rules, language_required=language_required) is None

        while True:
            case_id = queue.first(agent, self.rules, eligible)
            if case_id is None:
                return
            record = self.records[case_id]
            decision = self._decision(
                record.case,
                now,
                "offered",
                agent,
                "capacity freed: highest waiting case first",
                [agent],
                {},
            )
            record.case.routing = [*record.case.routing, decision][-MAX_ROUTING_LOG:]
            self._offer(record, agent, now, out)

    def _hold(self, agent: AgentState, case: Case) -> None:
        weight = case_weight(case, self.rules)
        previous = agent.holding.get(case.case_id)
        if previous is not None:
            agent.load[case.channel] = agent.load.get(case.channel, 0.0) - previous
        agent.holding[case.case_id] = weight
        agent.load[case.channel] = agent.load.get(case.channel, 0.0) + weight
        self.index.update(agent, self.rules)

    def _unhold(self, agent: AgentState, case: Case) -> None:
        weight = agent.holding.pop(case.case_id, None)
        if weight is not None and case.hostile and case.state == CaseState.OFFERED:
            # A hostile offer not taken does not count towards the run of hostile cases.
            agent.hostile_streak = max(0, agent.hostile_streak - 1)
        if weight is not None:
            agent.load[case.channel] = max(0.0, agent.load.get(case.channel, 0.0) - weight)
            self.index.update(agent, self.rules)

    def _holder(self, case: Case) -> AgentState | None:
        holder = case.offer.agent_id if case.offer else case.assignee
        return self.agents.get(holder) if holder else None

    def _release(self, case: Case) -> AgentState | None:
        agent = self._holder(case)
        if agent is not None:
            self._unhold(agent, case)
        return agent

    def _detach(self, record: CaseRecord, now: datetime) -> AgentState | None:
        """Take a case from its agent (offer or assignment): it waits again, its resolution
        clock running; returns the agent who had it."""
        case = record.case
        agent = self._release(case)
        case.offer = None
        case.assignee = None
        if case.state == CaseState.WAITING_ON_CUSTOMER:
            self._clock_resume(record, SlaMetricName.RESOLUTION, now)
        case.state = CaseState.QUEUED
        return agent

    def _return_to_queue(
        self, record: CaseRecord, now: datetime, out: Outcome, *, reason: str, reroute: bool = True
    ) -> AgentState | None:
        """Take a case back from its agent (offer or assignment) and route it again."""
        agent = self._detach(record, now)
        previous = agent.id if agent else None
        self._emit(record, CaseEventType.RETURNED, now, out, agent_id=previous, reason=reason)
        if reroute:
            self._route(record, now, out, rule_prefix=reason)
        if agent is not None:
            out.agents.add(agent.id)
        return agent

    def _escalate_for_authority(self, record: CaseRecord, now: datetime, out: Outcome) -> None:
        """Raise the required tier when no agent of the team at this tier may grant the remedy."""
        case = record.case
        if case.remedy is None:
            return
        tiers = list(AgentTier)
        start = TIER_RANK[case.required_tier]
        for tier in tiers[start:]:
            # Supervisors decide what is beyond anyone's authority.
            if tier == AgentTier.SUPERVISOR or covers(
                self._authority.get((case.team, tier), {}), case.remedy
            ):
                if tier != case.required_tier:
                    case.required_tier = tier
                    case.escalations += 1
                    self._emit(
                        record,
                        CaseEventType.ESCALATED,
                        now,
                        out,
                        reason="authority",
                        cause="authority",
                        to_tier=tier.value,
                    )
                return

    # ------------------------------------------------------------------ commands

    def _on_command(self, cmd: Command, now: datetime, out: Outcome) -> CommandResult:
        actor = self.agents.get(cmd.actor)
        if actor is None:
            return _result(cmd, Status.FORBIDDEN, "unknown agent")
        if cmd.action in (
            Action.PRESENCE,
            Action.UPSERT_AGENT,
            Action.REMOVE_AGENT,
            Action.DISCONNECTED,
        ):
            return self._on_agent_command(cmd, actor, now, out)
        if cmd.action == Action.TAG_INCIDENT:
            return self._tag_incident(cmd, actor, now, out)
        if cmd.case_id is None:
            return _result(cmd, Status.INVALID, "case_id is required")
        record = self._whole(cmd.case_id)
        if record is None:
            return _result(cmd, Status.NOT_FOUND, "no such case")
        case = record.case
        supervisor = actor.profile.is_supervisor
        if not supervisor and cmd.actor not in (
            case.assignee,
            case.offer.agent_id if case.offer else None,
        ):
            return _result(cmd, Status.FORBIDDEN, "not your case")
        if str(cmd.command_id) in record.commands:
            return _result(cmd, Status.OK, "already applied", case)
        handler = _CASE_HANDLERS.get(cmd.action)
        if handler is None:
            return _result(cmd, Status.INVALID, f"{cmd.action} is not a case action")
        # CSAT is the customer's verdict on the agent's work: the agent does not record it.
        if cmd.action in (Action.REASSIGN, Action.RELABEL, Action.CSAT) and not supervisor:
            return _result(cmd, Status.FORBIDDEN, "supervisors only")
        problem = handler(self, record, cmd, actor, now, out)
        if problem is not None:
            return problem
        record.commands = [*record.commands, str(cmd.command_id)][-MAX_COMMAND_IDS:]
        out.cases.add(case.case_id)
        self._schedule(record)
        return _result(cmd, Status.OK, "", case)

    def _accept(
        self, record: CaseRecord, cmd: Command, actor: AgentState, now: datetime, out: Outcome
    ) -> CommandResult | None:
        case = record.case
        if case.state != CaseState.OFFERED or case.offer is None:
            return _result(cmd, Status.CONFLICT, f"case is {case.state}, not offered")
        if case.offer.agent_id != actor.id:
            return _result(cmd, Status.FORBIDDEN, "not offered to you")
        case.state = CaseState.ASSIGNED
        case.assignee = actor.id
        case.offer = None
        case.assigned_at = case.assigned_at or now
        case.queued_at = None
        if actor.id not in case.agents_involved:
            case.agents_involved = [*case.agents_involved, actor.id]
        actor.last_assigned_at = now
        actor.lapsed_offers = 0
        self._touch_agent(actor, out)
        self.index.update(actor, self.rules)
        self._emit(record, CaseEventType.ASSIGNED, now, out, agent_id=actor.id, actor=actor.id)
        return None

    def _decline(
        self, record: CaseRecord, cmd: Command, actor: AgentState, now: datetime, out: Outcome
    ) -> CommandResult | None:
        case = record.case
        if case.state != CaseState.OFFERED or case.offer is None:
            return _result(cmd, Status.CONFLICT, f"case is {case.state}, not offered")
        if case.offer.agent_id != actor.id:
            return _result(cmd, Status.FORBIDDEN, "not offered to you")
        self._release(case)
        case.offer = None
        case.declined_by = [*case.declined_by, actor.id]
        actor.lapsed_offers = 0
        self._emit(
            record,
            CaseEventType.OFFER_DECLINED,
            now,
            out,
            agent_id=actor.id,
            actor=actor.id,
            reason=cmd.reason,
        )
        self._route(record, now, out, rule_prefix="offer declined")
        self._drain(actor, now, out)
        return None

    def _respond(
        self, record: CaseRecord, cmd: Command, actor: AgentState, now: datetime, out: Outcome
    ) -> CommandResult | None:
        case = record.case
        if case.state not in (CaseState.ASSIGNED, CaseState.WAITING_ON_CUSTOMER):
            return _result(cmd, Status.CONFLICT, f"case is {case.state}; accept it first")
        first = case.first_response_at is None
        case.first_response_at = case.first_response_at or now
        case.last_response_at = now
        self._stop_clock(record, SlaMetricName.FIRST_RESPONSE, now, out)
        self._stop_clock(record, SlaMetricName.NEXT_RESPONSE, now, out)
        self._emit(
            record,
            CaseEventType.RESPONDED,
            now,
            out,
            agent_id=actor.id,
            actor=actor.id,
            first=first,
            chars=cmd.chars,
        )
        return None

    def _wait(
        self, record: CaseRecord, cmd: Command, actor: AgentState, now: datetime, out: Outcome
    ) -> CommandResult | None:
        case = record.case
        if case.state != CaseState.ASSIGNED:
            return _result(cmd, Status.CONFLICT, f"case is {case.state}, not assigned")
        case.state = CaseState.WAITING_ON_CUSTOMER
        self._clock_pause(record, SlaMetricName.RESOLUTION, now)
        self._clock_pause(record, SlaMetricName.NEXT_RESPONSE, now)
        self._emit(
            record,
            CaseEventType.WAITING_ON_CUSTOMER,
            now,
            out,
            agent_id=actor.id,
            actor=actor.id,
            reason=cmd.reason,
        )
        return None

    def _resume_cmd(
        self, record: CaseRecord, cmd: Command, actor: AgentState, now: datetime, out: Outcome
    ) -> CommandResult | None:
        if record.case.state != CaseState.WAITING_ON_CUSTOMER:
            return _result(cmd, Status.CONFLICT, f"case is {record.case.state}, not waiting")
        self._resume(record, now, out, actor=actor.id)
        return None

    def _resume(self, record: CaseRecord, now: datetime, out: Outcome, *, actor: str) -> None:
        case = record.case
        case.state = CaseState.ASSIGNED
        self._clock_resume(record, SlaMetricName.RESOLUTION, now)
        self._clock_resume(record, SlaMetricName.NEXT_RESPONSE, now)
        self._emit(record, CaseEventType.RESUMED, now, out, actor=actor, agent_id=case.assignee)
        holder = self._holder(case)
        if holder is not None and holder.presence == Presence.OFFLINE:
            self._return_to_queue(record, now, out, reason="agent offline")

    def _resolve(
        self, record: CaseRecord, cmd: Command, actor: AgentState, now: datetime, out: Outcome
    ) -> CommandResult | None:
        case = record.case
        if case.state not in (CaseState.ASSIGNED, CaseState.WAITING_ON_CUSTOMER):
            return _result(cmd, Status.CONFLICT, f"case is {case.state}; accept it first")
        agent = self._release(case)
        if case.state == CaseState.WAITING_ON_CUSTOMER:
            self._clock_resume(record, SlaMetricName.RESOLUTION, now)
        case.state = CaseState.RESOLVED
        case.resolved_at = now
        case.resolution_note = cmd.note
        for metric in (
            SlaMetricName.FIRST_RESPONSE,
            SlaMetricName.NEXT_RESPONSE,
            SlaMetricName.RESOLUTION,
        ):
            self._stop_clock(record, metric, now, out)
        self.open_by_customer.pop(case.customer_id, None)
        self._start_clock(record, SlaMetricName.FOLLOW_UP, now)
        follow = record.clocks.get(SlaMetricName.FOLLOW_UP)
        case.follow_up_due_at = (
            sla.due_at(follow, self._calendar(case)) if follow is not None else None
        )
        self._emit(
            record,
            CaseEventType.RESOLVED,
            now,
            out,
            agent_id=actor.id,
            actor=actor.id,
            first_contact=case.first_contact_resolution,
        )
        self._settling.set(case.case_id, self._quiet_at(case).timestamp())
        if agent is not None:
            out.agents.add(agent.id)
            self._drain(agent, now, out)
        return None

    def _transfer(
        self, record: CaseRecord, cmd: Command, actor: AgentState, now: datetime, out: Outcome
    ) -> CommandResult | None:
        case = record.case
        if not case.is_open:
            return _result(cmd, Status.CONFLICT, "case is resolved")
        if cmd.to_team is None and cmd.to_agent is None:
            return _result(cmd, Status.INVALID, "give to_team or to_agent")
        if cmd.to_team is not None and cmd.to_team not in self.teams:
            return _result(cmd, Status.INVALID, f"no team '{cmd.to_team}'")
        target = self.agents.get(cmd.to_agent) if cmd.to_agent else None
        if cmd.to_agent is not None and target is None:
            return _result(cmd, Status.INVALID, f"no agent '{cmd.to_agent}'")
        previous = self._detach(record, now)
        case.transfers += 1
        if target is not None:
            case.team = target.profile.team
        elif cmd.to_team is not None:
            case.team = cmd.to_team
        self._emit(
            record,
            CaseEventType.TRANSFERRED,
            now,
            out,
            actor=actor.id,
            agent_id=previous.id if previous else None,
            to_team=case.team,
            to_agent=cmd.to_agent,
            reason=cmd.reason,
        )
        self._escalate_for_authority(record, now, out)
        self._route(
            record,
            now,
            out,
            prefer=target.id if target else None,
            rule_prefix=f"transferred by {actor.id}",
        )
        if previous is not None:
            out.agents.add(previous.id)
            self._drain(previous, now, out)
        return None

    def _escalate_cmd(
        self, record: CaseRecord, cmd: Command, actor: AgentState, now: datetime, out: Outcome
    ) -> CommandResult | None:
        case = record.case
        if not case.is_open:
            return _result(cmd, Status.CONFLICT, "case is resolved")
        if case.required_tier == AgentTier.SUPERVISOR:
            return _result(cmd, Status.CONFLICT, "already at supervisor level")
        self._escalate(
            record, now, out, reason=cmd.reason or "agent request", cause="agent", actor=actor.id
        )
        return None

    def _escalate(
        self,
        record: CaseRecord,
        now: datetime,
        out: Outcome,
        *,
        reason: str,
        cause: str,
        actor: str = ROUTER,
    ) -> None:
        case = record.case
        tiers = list(AgentTier)
        if case.required_tier == AgentTier.SUPERVISOR:
            return
        case.required_tier = tiers[TIER_RANK[case.required_tier] + 1]
        case.escalations += 1
        case.declined_by = []
        self._emit(
            record,
            CaseEventType.ESCALATED,
            now,
            out,
            actor=actor,
            agent_id=case.assignee,
            reason=reason,
            cause=cause,
            to_tier=case.required_tier.value,
        )
        holder = self._holder(case)
        if holder is not None and TIER_RANK[holder.profile.tier] >= TIER_RANK[case.required_tier]:
            return
        if case.state == CaseState.QUEUED:
            self.queues[case.team].discard(case.case_id)
            self._route(record, now, out, rule_prefix=f"escalated ({reason})")
        else:
            agent = self._return_to_queue(record, now, out, reason=f"escalated ({reason})")
            if agent is not None:
                self._drain(agent, now, out)

    def _reassign(
        self, record: CaseRecord, cmd: Command, actor: AgentState, now: datetime, out: Outcome
    ) -> CommandResult | None:
        case = record.case
        if not case.is_open:
            return _result(cmd, Status.CONFLICT, "case is resolved")
        target = self.agents.get(cmd.to_agent or "")
        if target is None:
            return _result(cmd, Status.INVALID, f"no agent '{cmd.to_agent}'")
        if target.presence == Presence.OFFLINE:
            return _result(cmd, Status.CONFLICT, f"{target.id} is offline")
        previous = self._detach(record, now)
        self.queues[case.team].discard(case.case_id)
        case.team = target.profile.team
        case.state = CaseState.ASSIGNED
        case.assignee = target.id
        case.assigned_at = case.assigned_at or now
        case.queued_at = None
        if target.id not in case.agents_involved:
            case.agents_involved = [*case.agents_involved, target.id]
        case.transfers += 1
        self._hold(target, case)
        target.last_assigned_at = now
        self._touch_agent(target, out)
        decision = self._decision(
            case, now, "assigned", target, f"reassigned by {actor.id}", [target], {}
        )
        case.routing = [*case.routing, decision][-MAX_ROUTING_LOG:]
        self._emit(
            record,
            CaseEventType.ASSIGNED,
            now,
            out,
            actor=actor.id,
            agent_id=target.id,
            reassigned_from=previous.id if previous else None,
        )
        if previous is not None and previous.id != target.id:
            out.agents.add(previous.id)
            self._drain(previous, now, out)
        return None

    def _csat(
        self, record: CaseRecord, cmd: Command, actor: AgentState, now: datetime, out: Outcome
    ) -> CommandResult | None:
        case = record.case
        if case.state != CaseState.RESOLVED:
            return _result(cmd, Status.CONFLICT, "CSAT is recorded after resolution")
        if cmd.score is None:
            return _result(cmd, Status.INVALID, "score is required")
        case.csat = cmd.score
        self._emit(record, CaseEventType.CSAT_RECORDED, now, out, actor=actor.id, score=cmd.score)
        return None

    def _relabel(
        self, record: CaseRecord, cmd: Command, actor: AgentState, now: datetime, out: Outcome
    ) -> CommandResult | None:
        """A supervisor corrects the tags (or, for a case in the review lane, confirms them):
        what follows from the tags is derived again, and a case whose team changed is routed
        in its new team."""
        case = record.case
        labels = cmd.labels or Labels()
        given = labels.model_dump(exclude_none=True)
        pending = case.review is not None and case.review.status == "pending"
        if not given and not pending:
            return _result(cmd, Status.INVALID, "give at least one label")
        detail: dict[str, str | None] = {}
        if labels.category is not None and labels.category != case.category:
            detail["category_from"] = case.category.value
            case.category = labels.category
            case.remedy = estimate_remedy(labels.category, case.facts)
        if labels.difficult is not None and labels.difficult != case.difficult:
            detail["difficult_from"] = case.difficult.value
            case.difficult = labels.difficult
            case.hostile = labels.difficult in HOSTILE
            case.guidance = handling_guidance(labels.difficult)
        if labels.sentiment is not None:
            detail["sentiment"] = labels.sentiment.value
        self._reprioritise(case)
        team = self.roster.team_for(case.category)
        moved = case.is_open and team != case.team
        if moved:
            detail["team_from"] = case.team
        released = _held(case)
        if pending:
            assert case.review is not None
            case.review = case.review.model_copy(
                update={"status": "done", "reviewed_by": actor.id, "reviewed_at": now}
            )
            self._stop_clock(record, SlaMetricName.REVIEW, now, out)
            detail["reviewed"] = "true"
        self._emit(
            record,
            CaseEventType.RELABELLED,
            now,
            out,
            actor=actor.id,
            category=case.category.value,
            difficult=case.difficult.value,
            team=team,
            priority=case.priority.value,
            **detail,
        )
        if given:
            out.corrections.extend(
                corrections_for(case, case.messages, labels, actor=actor.id, now=now)
            )
        if moved:
            previous = self._detach(record, now)
            case.team = team
            self._escalate_for_authority(record, now, out)
            self._route(record, now, out, rule_prefix=f"relabelled by {actor.id}: team {team}")
            if previous is not None:
                out.agents.add(previous.id)
                self._drain(previous, now, out)
            return None
        if case.is_open:
            self._escalate_for_authority(record, now, out)
        holder = self._holder(case)
        if case.is_open and case.hostile and holder is not None and not holder.profile.hostile:
            self._return_to_queue(record, now, out, reason="relabelled hostile")
        elif released and case.state == CaseState.QUEUED:
            self._route(record, now, out, rule_prefix=f"reviewed by {actor.id}")
        elif case.state == CaseState.QUEUED:
            self._queue(case)
        return None

    def _reprioritise(self, case: Case) -> None:
        """The priority the case's tags give now (a supervisor's correction can lower it);
        a rise a service-level warning gave is kept."""
        latest = case.messages[-1]
        components = score_components(
            sentiment_score=latest.sentiment_score,
            difficult=case.difficult,
            tier=case.customer_tier,
            category=case.category,
            public=latest.public,
            reach=latest.reach,
            repeat_complainer=case.history.repeat_complainer,
            remedy=case.remedy,
            weights=self.settings.weights,
        )
        score = round(sum(c.points for c in components), 2)
        base = band(score, self.settings.weights)
        order = list(Priority)
        was_raised = order.index(case.priority) < order.index(case.base_priority)
        case.priority_score = score
        case.priority_components = components
        case.base_priority = base
        if not was_raised or order.index(base) < order.index(case.priority):
            case.priority = base

    def _tag_incident(
        self, cmd: Command, actor: AgentState, now: datetime, out: Outcome
    ) -> CommandResult:
        """Tie the cases holding the given messages to an incident (the members of an emerging
        cluster), open or resolved: agents see the reference on each case they work."""
        if not actor.profile.is_supervisor:
            return _result(cmd, Status.FORBIDDEN, "supervisors only")
        if cmd.incident is None or not cmd.event_ids:
            return _result(cmd, Status.INVALID, "incident and event_ids are required")
        tag = IncidentTag(
            reference=cmd.incident.reference,
            note=cmd.incident.note,
            tagged_by=actor.id,
            tagged_at=now,
        )
        missing: list[uuid.UUID] = []
        cases: dict[uuid.UUID, None] = {}
        for event_id in dict.fromkeys(cmd.event_ids):
            case_id = self.by_event.get(event_id)
            if case_id is None:
                missing.append(event_id)
            else:
                cases[case_id] = None
        tagged: list[uuid.UUID] = []
        unchanged: list[uuid.UUID] = []
        for case_id in cases:
            record = self._whole(case_id)
            if record is None:
                continue
            case = record.case
            current = case.incident
            if str(cmd.command_id) in record.commands or (
                current is not None
                and (current.reference, current.note) == (tag.reference, tag.note)
            ):
                unchanged.append(case_id)
                continue
            case.incident = tag
            self._emit(
                record,
                CaseEventType.INCIDENT_TAGGED,
                now,
                out,
                actor=actor.id,
                reference=tag.reference,
                reference_from=current.reference if current is not None else None,
            )
            record.commands = [*record.commands, str(cmd.command_id)][-MAX_COMMAND_IDS:]
            out.cases.add(case_id)
            tagged.append(case_id)
        result = _result(cmd, Status.OK)
        return result.model_copy(
            update={
                "incident": IncidentTagged(
                    reference=tag.reference, tagged=tagged, unchanged=unchanged, missing=missing
                )
            }
        )

    def _on_agent_command(
        self, cmd: Command, actor: AgentState, now: datetime, out: Outcome
    ) -> CommandResult:
        if cmd.action == Action.PRESENCE:
            target_id = cmd.to_agent or actor.id
            if target_id != actor.id and not actor.profile.is_supervisor:
                return _result(cmd, Status.FORBIDDEN, "supervisors only")
            target = self.agents.get(target_id)
            if target is None:
                return _result(cmd, Status.NOT_FOUND, "no such agent")
            if cmd.presence is None:
                return _result(cmd, Status.INVALID, "presence is required")
            self._set_presence(target, cmd.presence, now, out)
            return _result(cmd, Status.OK)
        if cmd.action == Action.DISCONNECTED:
            # Applied only if the agent is still available when it reaches the inbox.
            if actor.presence == Presence.AVAILABLE:
                self._set_away(actor, AwayReason.DISCONNECTED, now, out)
            return _result(cmd, Status.OK)
        if not actor.profile.is_supervisor:
            return _result(cmd, Status.FORBIDDEN, "supervisors only")
        if cmd.action == Action.UPSERT_AGENT:
            if cmd.profile is None:
                return _result(cmd, Status.INVALID, "profile is required")
            if cmd.profile.team not in self.teams:
                return _result(cmd, Status.INVALID, f"no team '{cmd.profile.team}'")
            configured = self.configured.get(cmd.profile.id)
            if configured is None:
                return _result(cmd, Status.INVALID, "agents are added in the roster file")
            problem = _identity_change(cmd.profile, configured)
            if problem is not None:
                return _result(cmd, Status.INVALID, problem)
            self._upsert_agent(_with_identity(cmd.profile, configured), now, out)
            return _result(cmd, Status.OK)
        target = self.agents.get(cmd.to_agent or "")
        if target is None:
            return _result(cmd, Status.NOT_FOUND, "no such agent")
        if target.id == actor.id:
            return _result(cmd, Status.CONFLICT, "a supervisor cannot remove themselves")
        self._set_presence(target, Presence.OFFLINE, now, out)
        record = self.agent_records[target.id]
        record.removed = True
        self.index.remove(target.id)
        del self.agents[target.id]
        self._roster_changed()
        out.agents.add(target.id)
        return _result(cmd, Status.OK)

    def _upsert_agent(self, profile: AgentProfile, now: datetime, out: Outcome) -> None:
        existing = self.agents.get(profile.id)
        if existing is None:
            fresh = AgentRecord(profile=profile, presence=profile.presence, presence_since=now)
            self.agent_records[profile.id] = fresh
            self.agents[profile.id] = _state_of(fresh)
            self.index.update(self.agents[profile.id], self.rules)
            self._roster_changed()
            out.agents.add(profile.id)
            self._drain(self.agents[profile.id], now, out)
            return
        existing.profile = profile
        self.agent_records[profile.id].profile = profile
        self._roster_changed()
        out.agents.add(profile.id)
        # Work the agent may no longer hold (team, channel, authority) goes back to the queue.
        for case_id in list(existing.holding):
            record = self.records.get(case_id)
            if record is None:
                continue
            case = record.case
            if (
                case.team != profile.team
                or case.channel not in profile.channels
                or TIER_RANK[profile.tier] < TIER_RANK[case.required_tier]
            ):
                self._return_to_queue(record, now, out, reason="roster change")
        self.index.update(existing, self.rules)
        self._drain(existing, now, out)

    def _set_presence(
        self,
        agent: AgentState,
        presence: Presence,
        now: datetime,
        out: Outcome,
        *,
        reason: AwayReason | None = None,
    ) -> None:
        """Set an agent's presence; ``reason`` when the router does it on its own."""
        previous = agent.presence
        agent.presence = presence
        agent.presence_since = now
        agent.away_reason = reason
        agent.lapsed_offers = 0
        if presence != previous:
            agent.hostile_streak = 0
        self._touch_agent(agent, out)
        self.index.update(agent, self.rules)
        if presence in (Presence.AWAY, Presence.OFFLINE, Presence.BUSY):
            for case_id in list(agent.holding):
                record = self.records.get(case_id)
                if record is None:
                    continue
                offered = record.case.state == CaseState.OFFERED
                if offered or presence == Presence.OFFLINE:
                    self._return_to_queue(record, now, out, reason=f"agent {presence.value}")
        if presence == Presence.AVAILABLE:
            self._drain(agent, now, out)

    def _touch_agent(self, agent: AgentState, out: Outcome) -> None:
        record = self.agent_records[agent.id]
        record.presence = agent.presence
        record.presence_since = agent.presence_since
        record.hostile_streak = agent.hostile_streak
        record.last_assigned_at = agent.last_assigned_at
        record.lapsed_offers = agent.lapsed_offers
        record.away_reason = agent.away_reason
        out.agents.add(agent.id)

    def _lapsed(self, agent: AgentState, now: datetime, out: Outcome) -> None:
        """An offer to the agent expired unanswered: after ``lapses_before_away`` in a row, an
        available agent has walked away, and each further offer would cost a customer the
        whole offer timeout."""
        agent.lapsed_offers += 1
        self._touch_agent(agent, out)
        limit = self.settings.lapses_before_away
        if limit and agent.lapsed_offers >= limit and agent.presence == Presence.AVAILABLE:
            self._set_away(agent, AwayReason.OFFERS_LAPSED, now, out)

    def _set_away(self, agent: AgentState, reason: AwayReason, now: datetime, out: Outcome) -> None:
        """The router sets an absent agent away (their offers return to the queue) and says so
        on ``agents.events``."""
        lapsed = agent.lapsed_offers
        self._set_presence(agent, Presence.AWAY, now, out, reason=reason)
        agent.lapsed_offers = lapsed  # kept while away, for the floor: reset on their return
        self._touch_agent(agent, out)
        out.notices.append(
            AgentNotice(
                event_id=agent_notice_id(agent.id, now, reason),
                agent_id=agent.id,
                team=agent.profile.team,
                at=now,
                reason=reason,
                lapsed_offers=lapsed,
            )
        )

    # ------------------------------------------------------------------ ticks

    def _on_tick(self, now: datetime, out: Outcome) -> None:
        """Fire what is due: offers expiring, deadlines, then resolved cases to compress or
        forget. Only the entries due are read."""
        at = now.timestamp()
        fired = 0
        while (case_id := self._clocks.pop_due(at)) is not None:
            record = self._whole(case_id)
            if record is None:
                continue
            fired += self._tick_case(record, now, out)
            self._schedule(record)
        out.fired = fired
        while (case_id := self._settling.pop_due(at)) is not None:
            self._settle(case_id, now, out)

    def _tick_case(self, record: CaseRecord, now: datetime, out: Outcome) -> int:
        case = record.case
        fired = 0
        if case.state == CaseState.OFFERED and case.offer and case.offer.expires_at <= now:
            agent_id = case.offer.agent_id
            agent = self._release(case)
            case.offer = None
            case.declined_by = [*case.declined_by, agent_id]
            self._emit(record, CaseEventType.OFFER_TIMED_OUT, now, out, agent_id=agent_id)
            if agent is not None:
                self._lapsed(agent, now, out)
            self._route(record, now, out, rule_prefix=f"offer to {agent_id} timed out")
            out.cases.add(case.case_id)
            fired += 1
            if agent is not None:
                out.agents.add(agent.id)
        calendar = self._calendar(case)
        share = self.config.policy.warning_share
        for metric, clock in list(record.clocks.items()):
            for kind in sla.due_events(clock, calendar, share, now):
                clock = sla.mark_fired(clock, kind)
                record.clocks[metric] = clock
                fired += 1
                out.cases.add(case.case_id)
                if metric == SlaMetricName.FOLLOW_UP:
                    if kind == "breach":
                        self._emit(record, CaseEventType.FOLLOW_UP_DUE, now, out)
                    continue
                self._sla_event(record, metric, kind, now, out)
        if fired and case.state == CaseState.QUEUED:
            self._queue(case)  # a deadline warned or breached: filed again
        return fired

    def _sla_event(
        self, record: CaseRecord, metric: SlaMetricName, kind: str, now: datetime, out: Outcome
    ) -> None:
        case = record.case
        policy = self.config.policy
        actions = policy.on_warning if kind == "warning" else policy.on_breach
        if metric == SlaMetricName.REVIEW:
            # A late review hurries the supervisors, not the case's agents.
            actions = [sla.SlaAction.NOTIFY]
        names = [action.value for action in actions]
        self._emit(
            record,
            CaseEventType.SLA_WARNING if kind == "warning" else CaseEventType.SLA_BREACHED,
            now,
            out,
            agent_id=case.assignee or (case.offer.agent_id if case.offer else None),
            metric=metric.value,
            actions=",".join(names),
            notify="notify" in names,
        )
        if not case.is_open:
            return
        for action in actions:
            if action == sla.SlaAction.RAISE_PRIORITY:
                self._raise_priority(record, now, out, reason=f"{metric.value} {kind}")
            elif action == sla.SlaAction.REOFFER and case.first_response_at is None:
                if case.state in (CaseState.OFFERED, CaseState.ASSIGNED):
                    holder = self._holder(case)
                    if holder is not None:
                        case.declined_by = [*case.declined_by, holder.id]
                    agent = self._return_to_queue(
                        record, now, out, reason=f"{metric.value} {kind}: re-offered"
                    )
                    if agent is not None:
                        self._drain(agent, now, out)
            elif action == sla.SlaAction.ESCALATE:
                self._escalate(record, now, out, reason=f"{metric.value} {kind}", cause="sla")

    def _raise_priority(
        self, record: CaseRecord, now: datetime, out: Outcome, *, reason: str
    ) -> None:
        case = record.case
        new = raised(case.priority)
        if new == case.priority:
            return
        previous = case.priority
        case.priority = new
        case.priority_score = max(case.priority_score, band_floor(new, self.settings.weights))
        if case.state == CaseState.QUEUED:
            self._queue(case)
        self._emit(
            record,
            CaseEventType.PRIORITY_RAISED,
            now,
            out,
            reason=reason,
            from_priority=previous.value,
            to_priority=new.value,
        )

    # ------------------------------------------------------------------ reopen

    def _reopen(self, record: CaseRecord, now: datetime, out: Outcome) -> None:
        case = record.case
        previous = case.assignee
        case.state = CaseState.QUEUED
        case.assignee = None
        case.offer = None
        case.resolved_at = None
        case.follow_up_due_at = None
        case.reopened += 1
        case.queued_at = None
        case.declined_by = []
        record.clocks.pop(SlaMetricName.FOLLOW_UP, None)
        self.open_by_customer[case.customer_id] = case.case_id
        self._settling.discard(case.case_id)
        self._start_clock(record, SlaMetricName.RESOLUTION, now, restart=True)
        self._start_clock(record, SlaMetricName.NEXT_RESPONSE, now, restart=True)
        self._emit(record, CaseEventType.REOPENED, now, out, actor="customer", agent_id=previous)
        self._route(record, now, out, prefer=previous, rule_prefix="reopened by customer reply")

    # ------------------------------------------------------------------ clocks

    def _calendar(self, case: Case) -> sla.BusinessCalendar:
        team = self.teams.get(case.team)
        name = team.calendar if team else "always"
        return self.config.calendars[name]

    def _target(self, case: Case, metric: SlaMetricName) -> float | None:
        if metric == SlaMetricName.REVIEW:
            return self.config.policy.review.total_seconds()
        target = sla.target_for(self.config.policy, case.channel.value, case.base_priority.value)
        value: timedelta | None = getattr(target, metric.value)
        return value.total_seconds() if value is not None else None

    def _start_clock(
        self, record: CaseRecord, metric: SlaMetricName, now: datetime, *, restart: bool = True
    ) -> None:
        current = record.clocks.get(metric)
        if current is not None and not restart and current.stopped_at is None:
            return
        target = self._target(record.case, metric)
        if target is None:
            return
        clock = sla.start_clock(metric, target, now)
        if record.case.state == CaseState.WAITING_ON_CUSTOMER and metric in (
            SlaMetricName.RESOLUTION,
            SlaMetricName.NEXT_RESPONSE,
        ):
            clock = sla.pause_clock(clock, self._calendar(record.case), now)
        record.clocks[metric] = clock

    def _stop_clock(
        self, record: CaseRecord, metric: SlaMetricName, now: datetime, out: Outcome
    ) -> None:
        clock = record.clocks.get(metric)
        if clock is None or clock.stopped_at is not None:
            return
        calendar = self._calendar(record.case)
        # A deadline that passed before the clock's tick fired it (the step was done between
        # the deadline and the tick, or while the router was down) still fires, once, as the
        # clock stops; its actions are not taken, as the step they would hurry is done.
        for kind in sla.due_events(clock, calendar, self.config.policy.warning_share, now):
            clock = sla.mark_fired(clock, kind)
            record.clocks[metric] = clock
            case = record.case
            self._emit(
                record,
                CaseEventType.SLA_WARNING if kind == "warning" else CaseEventType.SLA_BREACHED,
                now,
                out,
                agent_id=case.assignee or (case.offer.agent_id if case.offer else None),
                metric=metric.value,
                actions="",
                notify=False,
                late=True,
            )
        stopped = sla.stop_clock(clock, calendar, now)
        record.clocks[metric] = stopped
        out.clocks_stopped.append((record.case.case_id, metric))

    def _clock_pause(self, record: CaseRecord, metric: SlaMetricName, now: datetime) -> None:
        clock = record.clocks.get(metric)
        if clock is not None and clock.stopped_at is None and clock.running_since is not None:
            record.clocks[metric] = sla.pause_clock(clock, self._calendar(record.case), now)

    def _clock_resume(self, record: CaseRecord, metric: SlaMetricName, now: datetime) -> None:
        clock = record.clocks.get(metric)
        if clock is not None and clock.stopped_at is None and clock.running_since is None:
            record.clocks[metric] = sla.resume_clock(clock, now)

    def _view(
        self,
        record: CaseRecord,
        metric: SlaMetricName,
        clock: sla.SlaClock,
        calendar: sla.BusinessCalendar,
    ) -> _ClockView:
        """A clock as the agent sees it, computed once per clock and calendar (clocks are
        immutable: a change replaces the clock)."""
        # The private dict itself: reading a private attribute through pydantic's __getattr__
        # costs more than the lookup it saves.
        private = record.__pydantic_private__
        assert private is not None
        views: dict[SlaMetricName, tuple[Any, Any, _ClockView]] = private["_views"]
        cached = views.get(metric)
        if cached is not None and cached[0] is clock and cached[1] is calendar:
            return cached[2]
        due = sla.due_at(clock, calendar)
        warn = sla.warning_at(clock, calendar, self.config.policy.warning_share)
        view = _ClockView(
            deadline=Deadline(
                metric=metric,
                target_seconds=clock.target_seconds,
                due_at=due,
                warning_at=warn,
                paused=clock.running_since is None and clock.stopped_at is None,
                stopped_at=clock.stopped_at,
                met=sla.met(clock),
                warned=clock.warned,
                breached=clock.breached,
            ),
            due_at=due,
            warning_at=warn,
        )
        views[metric] = (clock, calendar, view)
        return view

    def deadlines(self, record: CaseRecord) -> list[Deadline]:
        """The clocks of a case as the agent sees them."""
        calendar = self._calendar(record.case)
        return [
            self._view(record, metric, clock, calendar).deadline
            for metric, clock in record.clocks.items()
        ]

    def _next_due_of(self, record: CaseRecord) -> datetime | None:
        case = record.case
        times: list[datetime] = []
        if case.state == CaseState.OFFERED and case.offer is not None:
            times.append(case.offer.expires_at)
        calendar = self._calendar(case)
        for metric, clock in record.clocks.items():
            if clock.stopped_at is not None or clock.running_since is None:
                continue
            view = self._view(record, metric, clock, calendar)
            warns = not clock.warned and clock.metric != SlaMetricName.FOLLOW_UP
            if warns and view.warning_at is not None:
                times.append(view.warning_at)
            if not clock.breached and view.due_at is not None:
                times.append(view.due_at)
        return min(times) if times else None

    def _schedule(self, record: CaseRecord) -> None:
        due = self._next_due_of(record)
        self._clocks.set(record.case.case_id, due.timestamp() if due is not None else None)

    # ------------------------------------------------------------------ events

    def _emit(
        self,
        record: CaseRecord,
        kind: CaseEventType,
        now: datetime,
        out: Outcome,
        *,
        actor: str = ROUTER,
        agent_id: str | None = None,
        **detail: str | int | float | bool | None,
    ) -> None:
        case = record.case
        case.version += 1
        case.updated_at = now
        case.deadlines = self.deadlines(record)
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
        out.payloads.append(event.model_dump_json().encode())

    def _add_keys(self, case: Case, keys: list[str]) -> None:
        for key in keys:
            if key not in case.thread_keys:
                case.thread_keys = [*case.thread_keys, key][-MAX_THREAD_KEYS:]
            self.by_thread[key] = case.case_id

    # ------------------------------------------------------------------ views

    def held_cases(self, agent_id: str) -> list[Case]:
        """The cases an agent holds (offered or assigned), newest first: the work a live
        stream's snapshot starts from (what they may read is :func:`access.sees`)."""
        agent = self.agents.get(agent_id)
        if agent is None:
            return []
        cases = [self.records[c].case for c in agent.holding if c in self.records]
        return sorted(cases, key=lambda c: c.updated_at, reverse=True)


def corrections_for(
    case: Case, messages: Iterable[CaseMessage], labels: Labels, *, actor: str, now: datetime
) -> list[Correction]:
    """Training examples from a relabelling: every message of the case with the labels the
    supervisor gave (the case's tags are the tags of all its messages)."""
    return [
        Correction(
            correction_id=uuid.uuid5(
                CORRECTION_NAMESPACE, f"{case.case_id}\x00{case.version}\x00{message.event_id}"
            ),
            case_id=case.case_id,
            event_id=message.event_id,
            channel=message.channel,
            text=message.text,
            label_sentiment=labels.sentiment,
            label_category=labels.category,
            label_difficult=labels.difficult,
            predicted_sentiment=message.sentiment.label,
            predicted_category=message.category.label,
            predicted_difficult=message.difficult.label,
            corrected_by=actor,
            corrected_at=now,
        )
        for message in messages
    ]


_CASE_HANDLERS = {
    Action.ACCEPT: Engine._accept,
    Action.DECLINE: Engine._decline,
    Action.RESPOND: Engine._respond,
    Action.WAIT: Engine._wait,
    Action.RESUME: Engine._resume_cmd,
    Action.RESOLVE: Engine._resolve,
    Action.TRANSFER: Engine._transfer,
    Action.ESCALATE: Engine._escalate_cmd,
    Action.REASSIGN: Engine._reassign,
    Action.CSAT: Engine._csat,
    Action.RELABEL: Engine._relabel,
}


def _result(
    cmd: Command, status: Status, message: str = "", case: Case | None = None
) -> CommandResult:
    return CommandResult(command_id=cmd.command_id, status=status, message=message, case=case)


def _held(case: Case) -> bool:
    """Waiting for a supervisor's review before it is offered."""
    review = case.review
    return review is not None and review.hold and review.status == "pending"


def _fresh_agent(profile: AgentProfile) -> AgentRecord:
    return AgentRecord(profile=profile, presence=profile.presence)


def _state_of(record: AgentRecord) -> AgentState:
    return AgentState(
        profile=record.profile,
        presence=record.presence,
        hostile_streak=record.hostile_streak,
        last_assigned_at=record.last_assigned_at,
        presence_since=record.presence_since,
        lapsed_offers=record.lapsed_offers,
        away_reason=record.away_reason,
    )


def _base_language(tag: str | None) -> str | None:
    return tag.split("-", 1)[0].lower() if tag else None


def _thread_keys(fc: FeedbackClassified) -> list[str]:
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


def _bounded_messages(messages: list[CaseMessage]) -> list[CaseMessage]:
    """The newest MAX_MESSAGES messages: the latest whole, the others as excerpts."""
    kept = messages[-MAX_MESSAGES:]
    earlier = [_excerpt(m, EARLIER_TEXT_CHARS, EARLIER_SUBJECT_CHARS) for m in kept[:-1]]
    return [*earlier, kept[-1]]


def _bounded_facts(facts: Facts) -> Facts:
    if len(facts.amounts) <= MAX_FACTS and len(facts.references) <= MAX_FACTS:
        return facts
    return facts.model_copy(
        update={"amounts": facts.amounts[:MAX_FACTS], "references": facts.references[:MAX_FACTS]}
    )


def _with_identity(profile: AgentProfile, configured: AgentProfile) -> AgentProfile:
    """A profile with the roster file's name, tier and token."""
    return profile.model_copy(
        update={
            "name": configured.name,
            "tier": configured.tier,
            "token_sha256": configured.token_sha256,
        }
    )


def _identity_change(profile: AgentProfile, configured: AgentProfile) -> str | None:
    """Why a roster change from the API is refused: names, tiers and tokens are the roster
    file's (a token left out keeps the configured one)."""
    if profile.token_sha256 is not None and profile.token_sha256 != configured.token_sha256:
        return "tokens are set in the roster file"
    if profile.tier != configured.tier:
        return "tiers are set in the roster file"
    if profile.name != configured.name:
        return "names are set in the roster file"
    return None


def _case_message(fc: FeedbackClassified) -> CaseMessage:
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
