"""The service-level clocks of the cases: started, paused, resumed and stopped as a case moves,
seen by the agent as deadlines, and fired by a tick when a warning or a breach is due.

The arithmetic is :mod:`services.router.sla`'s; this module knows which calendar and target a
case's clock runs on, keeps each clock's view cached on its record, and says what fired.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from services.common.cases import Case, CaseEventType, CaseState, Deadline, SlaMetricName
from services.router import sla
from services.router.book import CaseRecord, ClockView, DueIndex
from services.router.outcome import ROUTER, Outcome, record_event
from services.router.roster import Team


class Clocks:
    """The clocks of every case of the engine, by the SLA configuration and the teams'
    calendars."""

    def __init__(self, config: sla.SlaConfig, teams: Mapping[str, Team]) -> None:
        self.config = config
        self.teams = teams

    # ------------------------------------------------------------------ events

    def emit(
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
        """Record a case event; the case carries its deadlines as of now."""
        record_event(
            out,
            record,
            self.deadlines(record),
            kind,
            now,
            actor=actor,
            agent_id=agent_id,
            detail=detail,
        )

    # ------------------------------------------------------------------ changes

    def calendar(self, case: Case) -> sla.BusinessCalendar:
        team = self.teams.get(case.team)
        name = team.calendar if team else "always"
        return self.config.calendars[name]

    def target(self, case: Case, metric: SlaMetricName) -> float | None:
        if metric == SlaMetricName.REVIEW:
            return self.config.policy.review.total_seconds()
        target = sla.target_for(self.config.policy, case.channel.value, case.base_priority.value)
        value: timedelta | None = getattr(target, metric.value)
        return value.total_seconds() if value is not None else None

    def start(
        self, record: CaseRecord, metric: SlaMetricName, now: datetime, *, restart: bool = True
    ) -> None:
        current = record.clocks.get(metric)
        if current is not None and not restart and current.stopped_at is None:
            return
        target = self.target(record.case, metric)
        if target is None:
            return
        clock = sla.start_clock(metric, target, now)
        if record.case.state == CaseState.WAITING_ON_CUSTOMER and metric in (
            SlaMetricName.RESOLUTION,
            SlaMetricName.NEXT_RESPONSE,
        ):
            clock = sla.pause_clock(clock, self.calendar(record.case), now)
        record.clocks[metric] = clock

    def stop(self, record: CaseRecord, metric: SlaMetricName, now: datetime, out: Outcome) -> None:
        clock = record.clocks.get(metric)
        if clock is None or clock.stopped_at is not None:
            return
        calendar = self.calendar(record.case)
        # A deadline that passed before the clock's tick fired it (the step was done between
        # the deadline and the tick, or while the router was down) still fires, once, as the
        # clock stops; its actions are not taken, as the step they would hurry is done.
        for kind in sla.due_events(clock, calendar, self.config.policy.warning_share, now):
            clock = sla.mark_fired(clock, kind)
            record.clocks[metric] = clock
            self._emit_fired(record, metric, kind, now, out, actions=[], notify=False, late=True)
        stopped = sla.stop_clock(clock, calendar, now)
        record.clocks[metric] = stopped
        out.clocks_stopped.append((record.case.case_id, metric))

    def pause(self, record: CaseRecord, metric: SlaMetricName, now: datetime) -> None:
        clock = record.clocks.get(metric)
        if clock is not None and clock.stopped_at is None and clock.running_since is not None:
            record.clocks[metric] = sla.pause_clock(clock, self.calendar(record.case), now)

    def resume(self, record: CaseRecord, metric: SlaMetricName, now: datetime) -> None:
        clock = record.clocks.get(metric)
        if clock is not None and clock.stopped_at is None and clock.running_since is None:
            record.clocks[metric] = sla.resume_clock(clock, now)

    # ------------------------------------------------------------------ firing

    def fire_due(self, record: CaseRecord, now: datetime) -> Iterator[tuple[SlaMetricName, str]]:
        """Each warning or breach of the case due at ``now``, marked fired as it is yielded (the
        caller acts on one before the next is marked)."""
        calendar = self.calendar(record.case)
        share = self.config.policy.warning_share
        for metric, clock in list(record.clocks.items()):
            for kind in sla.due_events(clock, calendar, share, now):
                clock = sla.mark_fired(clock, kind)
                record.clocks[metric] = clock
                yield metric, kind

    def announce(
        self, record: CaseRecord, metric: SlaMetricName, kind: str, now: datetime, out: Outcome
    ) -> list[sla.SlaAction]:
        """Emit a warning or breach of a clock; returns the actions the policy takes for it."""
        policy = self.config.policy
        actions = policy.on_warning if kind == "warning" else policy.on_breach
        if metric == SlaMetricName.REVIEW:
            # A late review hurries the supervisors, not the case's agents.
            actions = [sla.SlaAction.NOTIFY]
        notify = sla.SlaAction.NOTIFY in actions
        self._emit_fired(record, metric, kind, now, out, actions=actions, notify=notify)
        return list(actions)

    def _emit_fired(
        self,
        record: CaseRecord,
        metric: SlaMetricName,
        kind: str,
        now: datetime,
        out: Outcome,
        *,
        actions: Sequence[sla.SlaAction],
        notify: bool,
        late: bool | None = None,
    ) -> None:
        """The event of a warning or breach that fired, for the agent holding the case."""
        case = record.case
        self.emit(
            record,
            CaseEventType.SLA_WARNING if kind == "warning" else CaseEventType.SLA_BREACHED,
            now,
            out,
            agent_id=case.assignee or (case.offer.agent_id if case.offer else None),
            metric=metric.value,
            actions=",".join(action.value for action in actions),
            notify=notify,
            late=late,
        )

    # ------------------------------------------------------------------ views

    def view(
        self,
        record: CaseRecord,
        metric: SlaMetricName,
        clock: sla.SlaClock,
        calendar: sla.BusinessCalendar,
    ) -> ClockView:
        """A clock as the agent sees it, computed once per clock and calendar (clocks are
        immutable: a change replaces the clock)."""
        # The private dict itself: reading a private attribute through pydantic's __getattr__
        # costs more than the lookup it saves.
        private = record.__pydantic_private__
        assert private is not None
        views: dict[SlaMetricName, tuple[Any, Any, ClockView]] = private["_views"]
        cached = views.get(metric)
        if cached is not None and cached[0] is clock and cached[1] is calendar:
            return cached[2]
        due = sla.due_at(clock, calendar)
        warn = sla.warning_at(clock, calendar, self.config.policy.warning_share)
        view = ClockView(
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
        calendar = self.calendar(record.case)
        return [
            self.view(record, metric, clock, calendar).deadline
            for metric, clock in record.clocks.items()
        ]

    def next_due(self, record: CaseRecord) -> datetime | None:
        """When the case next has something due: its offer expiring, a warning or a breach."""
        case = record.case
        times: list[datetime] = []
        if case.state == CaseState.OFFERED and case.offer is not None:
            times.append(case.offer.expires_at)
        calendar = self.calendar(case)
        for metric, clock in record.clocks.items():
            if clock.stopped_at is not None or clock.running_since is None:
                continue
            view = self.view(record, metric, clock, calendar)
            warns = not clock.warned and clock.metric != SlaMetricName.FOLLOW_UP
            if warns and view.warning_at is not None:
                times.append(view.warning_at)
            if not clock.breached and view.due_at is not None:
                times.append(view.due_at)
        return min(times) if times else None

    def schedule(self, record: CaseRecord, due: DueIndex) -> None:
        """File the case in ``due`` by when it next has something due."""
        at = self.next_due(record)
        due.set(record.case.case_id, at.timestamp() if at is not None else None)
