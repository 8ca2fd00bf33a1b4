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

import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.common.cases import Case, CaseEventType, CaseState, Deadline, SlaMetricName
from services.common.messages import Category
from services.router import floors, sla
from services.router.assignment import AgentRecord, Assignment
from services.router.book import CaseBook, CaseRecord, DueIndex, Moved, _Archived
from services.router.book import thread_keys as _thread_keys
from services.router.clocks import Clocks
from services.router.commands import (
    COMMAND_TYPES,
    CaseArrived,
    ClassifiedIn,
    Inbound,
    OnCase,
    OnFloor,
    Tick,
)
from services.router.feedback import on_feedback
from services.router.handlers import corrections_for, on_command
from services.router.outcome import ROUTER, Outcome
from services.router.priority import PriorityWeights
from services.router.roster import AgentProfile, Roster
from services.router.routing import AgentIndex, AgentState, QueueOrder, RoutingRules, TeamQueue

__all__ = [
    "ROUTER",
    "AgentRecord",
    "CaseRecord",
    "DueIndex",
    "Engine",
    "EngineSettings",
    "Outcome",
    "_thread_keys",
    "corrections_for",
]


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


class Engine:
    """All routing state of one partition, and the rules that change it.

    The state is kept by three collaborators the engine owns: the case book (``book``: the
    cases and their indexes), the clocks (``clocks``) and the assignment (``assign``: agents,
    their index and the team queues). ``apply`` hands each inbox message to its handler.
    """

    def __init__(
        self,
        roster: Roster,
        config: sla.SlaConfig,
        settings: EngineSettings,
        *,
        floor: str | None = None,
    ) -> None:
        # The whole roster says which team, and floor, a category belongs to; the engine routes
        # one floor (the roster's first unless named) with that floor's teams and agents.
        self.roster = roster
        self.floor = floor if floor is not None else roster.floor_ids[0]
        self.local_roster = roster.on_floor(self.floor)
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
        self.teams = {team.id: team for team in self.local_roster.teams}
        self.book = CaseBook(
            recent_resolved=settings.recent_resolved,
            keep=max(settings.reopen_window, settings.retention),
            reopen_window=settings.reopen_window,
            thread_window=settings.thread_window,
        )
        self.clocks = Clocks(config, self.teams)
        self.assign = Assignment(
            self.local_roster,
            book=self.book,
            clocks=self.clocks,
            rules=self.rules,
            weights=settings.weights,
            queue_order=settings.queue_order,
            offer_timeout=settings.offer_timeout,
            lapses_before_away=settings.lapses_before_away,
        )
        self.configured = self.assign.configured
        self.reset(records=(), agents=())

    # ------------------------------------------------------------------ the collaborators' state

    @property
    def records(self) -> dict[uuid.UUID, CaseRecord]:
        """The cases kept whole."""
        return self.book.records

    @records.setter
    def records(self, value: dict[uuid.UUID, CaseRecord]) -> None:
        self.book.records = value

    @property
    def archive(self) -> dict[uuid.UUID, _Archived]:
        """The resolved cases kept compressed."""
        return self.book.archive

    @archive.setter
    def archive(self, value: dict[uuid.UUID, _Archived]) -> None:
        self.book.archive = value

    @property
    def by_thread(self) -> dict[str, uuid.UUID]:
        return self.book.by_thread

    @property
    def by_event(self) -> dict[uuid.UUID, uuid.UUID]:
        return self.book.by_event

    @property
    def open_by_customer(self) -> dict[str, uuid.UUID]:
        return self.book.open_by_customer

    @property
    def agents(self) -> dict[str, AgentState]:
        """The agents on the roster (not removed), as routing sees them."""
        return self.assign.agents

    @property
    def agent_records(self) -> dict[str, AgentRecord]:
        return self.assign.agent_records

    @property
    def index(self) -> AgentIndex:
        return self.assign.index

    @property
    def queues(self) -> dict[str, TeamQueue]:
        return self.assign.queues

    # ------------------------------------------------------------------ state

    def team_for(self, category: Category) -> str:
        """The team a case of this category belongs to: the roster's, when on this floor;
        else this floor's default team (for a case that stays here all the same)."""
        team = self.roster.team_for(category)
        return team if team in self.teams else self.local_roster.default_team

    def reset(
        self,
        *,
        records: Iterable[CaseRecord],
        agents: Iterable[AgentRecord],
        moved: Iterable[Moved] = (),
    ) -> None:
        """Load stored state (after a restart or rebalance); derived indexes are rebuilt.

        ``records`` are every case the storage holds. Resolved cases are compressed or dropped
        at once as of the latest change among them (the router's time when it stopped); what
        is dropped is reported in ``Outcome.forgotten`` by the next tick.
        """
        self.book.clear()
        for note in sorted(moved, key=lambda n: n.at):
            self.book.moved[note.customer_id] = note
        self.assign.reset(list(agents))
        self.assign.roster_changed()
        book = self.book
        loaded = list(records)
        latest = max((r.case.updated_at for r in loaded), default=None)
        for case_record in loaded:
            case = case_record.case
            if (
                latest is not None
                and case.state == CaseState.RESOLVED
                and book.quiet_at(case) <= latest
                and book.keep_until(case) <= latest
                and self.clocks.next_due(case_record) is None
            ):
                book.mark_stale(case)
                continue
            book.load(case_record)
            self.assign.load(case_record)
            self.clocks.schedule(case_record, book.due)
            if latest is not None and not case.is_open and book.quiet_at(case) <= latest:
                book.compact(case_record)
        self.assign.index_all()

    def case(self, case_id: uuid.UUID) -> Case | None:
        """The case as it is now, whole or compressed (a compressed one is read back into a
        copy, which is not the engine's)."""
        record = self.record(case_id)
        return record.case if record else None

    def record(self, case_id: uuid.UUID) -> CaseRecord | None:
        """The case's record, whole or compressed (read back into a copy), as storage keeps it."""
        return self.book.record(case_id)

    def kept(self) -> Iterator[uuid.UUID]:
        """The ids of every case the engine keeps, whole or compressed."""
        return self.book.kept()

    def agent_record(self, agent_id: str) -> AgentRecord | None:
        return self.assign.agent_records.get(agent_id)

    def agent_by_token(self, token: str) -> AgentProfile | None:
        """The agent whose API token this is (tokens are kept only as sha256 digests)."""
        return self.assign.agent_by_token(token)

    def next_due(self) -> datetime | None:
        """The earliest time a tick has work (offer expiry, clock, or a resolved case to
        compress or forget), if any."""
        at = self.book.next_due()
        return datetime.fromtimestamp(at, UTC) if at is not None else None

    def deadlines(self, record: CaseRecord) -> list[Deadline]:
        """The clocks of a case as the agent sees them."""
        return self.clocks.deadlines(record)

    def _next_due_of(self, record: CaseRecord) -> datetime | None:
        return self.clocks.next_due(record)

    def held_cases(self, agent_id: str) -> list[Case]:
        """The cases an agent holds (offered or assigned), newest first: the work a live
        stream's snapshot starts from (what they may read is :func:`access.sees`)."""
        agent = self.agents.get(agent_id)
        if agent is None:
            return []
        records = self.book.records
        cases = [records[c].case for c in agent.holding if c in records]
        return sorted(cases, key=lambda c: c.updated_at, reverse=True)

    # ------------------------------------------------------------------ entry point

    def apply(self, message: Inbound, now: datetime) -> Outcome:
        """Apply one inbox message at ``now`` (a timezone-aware time)."""
        if now.tzinfo is not UTC:
            if now.utcoffset() is None:
                raise ValueError("now must be timezone-aware")
            now = now.astimezone(UTC)
        out = Outcome()
        handler = _HANDLERS.get(type(message))
        if handler is not None:
            handler(self, message, now, out)
        return out

    def _on_feedback(self, message: Any, now: datetime, out: Outcome) -> None:
        assert isinstance(message, ClassifiedIn)
        if floors.left_with_its_case(self, message):
            out.duplicate = True
            return
        floor = floors.message_floor(self, message, now)
        if floor is not None:
            floors.hand_on(self, message, floor, now, out)
            return
        on_feedback(self, message.feedback, now, out)

    def _on_arrived(self, message: Any, now: datetime, out: Outcome) -> None:
        assert isinstance(message, CaseArrived)
        floors.arrive(self, message, now, out)

    def _on_command(self, message: Any, now: datetime, out: Outcome) -> None:
        assert isinstance(message, OnCase | OnFloor)
        out.result = on_command(self, message, now, out)

    # ------------------------------------------------------------------ ticks

    def _on_tick(self, message: Any, now: datetime, out: Outcome) -> None:
        """Fire what is due: offers expiring, deadlines, then resolved cases to compress or
        forget. Only the entries due are read."""
        at = now.timestamp()
        fired = 0
        book = self.book
        while (case_id := book.due.pop_due(at)) is not None:
            record = book.whole(case_id)
            if record is None:
                continue
            fired += self._tick_case(record, now, out)
            self.clocks.schedule(record, book.due)
        out.fired = fired
        while (case_id := book.settling.pop_due(at)) is not None:
            self._settle(case_id, now, out)
        book.expire_moved(now, out)

    def _settle(self, case_id: uuid.UUID, now: datetime, out: Outcome) -> None:
        self.book.settle(case_id, now, out)

    def _tick_case(self, record: CaseRecord, now: datetime, out: Outcome) -> int:
        """Fire what is due of one case: its offer expiring, then its clocks' warnings and
        breaches, each with the actions the policy takes."""
        case = record.case
        fired = 0
        if case.state == CaseState.OFFERED and case.offer and case.offer.expires_at <= now:
            self._expire_offer(record, now, out)
            fired += 1
        for metric, kind in self.clocks.fire_due(record, now):
            fired += 1
            out.cases.add(case.case_id)
            if metric == SlaMetricName.FOLLOW_UP:
                if kind == "breach":
                    self.clocks.emit(record, CaseEventType.FOLLOW_UP_DUE, now, out)
                continue
            actions = self.clocks.announce(record, metric, kind, now, out)
            if case.is_open:
                self._take(actions, record, f"{metric.value} {kind}", now, out)
        if fired and case.state == CaseState.QUEUED:
            self.assign.queue(case)  # a deadline warned or breached: filed again
        return fired

    def _expire_offer(self, record: CaseRecord, now: datetime, out: Outcome) -> None:
        case = record.case
        assert case.offer is not None
        assign = self.assign
        agent_id = case.offer.agent_id
        agent = assign.release(case)
        case.offer = None
        case.declined_by = [*case.declined_by, agent_id]
        self.clocks.emit(record, CaseEventType.OFFER_TIMED_OUT, now, out, agent_id=agent_id)
        if agent is not None:
            assign.lapsed(agent, now, out)
        assign.route(record, now, out, rule_prefix=f"offer to {agent_id} timed out")
        out.cases.add(case.case_id)
        if agent is not None:
            out.agents.add(agent.id)

    def _take(
        self,
        actions: list[sla.SlaAction],
        record: CaseRecord,
        reason: str,
        now: datetime,
        out: Outcome,
    ) -> None:
        """The actions the SLA policy takes on a warning or breach of an open case."""
        case = record.case
        assign = self.assign
        for action in actions:
            if action == sla.SlaAction.RAISE_PRIORITY:
                assign.raise_priority(record, now, out, reason=reason)
            elif action == sla.SlaAction.REOFFER and case.first_response_at is None:
                if case.state in (CaseState.OFFERED, CaseState.ASSIGNED):
                    holder = assign.holder(case)
                    if holder is not None:
                        case.declined_by = [*case.declined_by, holder.id]
                    agent = assign.return_to_queue(record, now, out, reason=f"{reason}: re-offered")
                    if agent is not None:
                        assign.drain(agent, now, out)
            elif action == sla.SlaAction.ESCALATE:
                assign.escalate(record, now, out, reason=reason, cause="sla")


_Handler = Callable[[Engine, Any, datetime, Outcome], None]

# What each kind of inbox message does.
_HANDLERS: dict[type, _Handler] = {
    ClassifiedIn: Engine._on_feedback,
    Tick: Engine._on_tick,
    CaseArrived: Engine._on_arrived,
    **{model: Engine._on_command for model in COMMAND_TYPES.values()},
}
