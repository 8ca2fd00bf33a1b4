"""Who works a case: routing (choose an agent or queue), offers, the team queues drained as
agents free up, cases taken back from agents, escalation, and the agents' presence and load.

The choice itself is :mod:`services.router.routing`'s; this module keeps the agents, their
index and the queues in step with the cases of the :class:`~services.router.book.CaseBook`.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.common.cases import (
    TIER_RANK,
    AgentNotice,
    AgentTier,
    AwayReason,
    Candidate,
    Case,
    CaseEventType,
    CaseState,
    Offer,
    Presence,
    RemedyKind,
    RoutingDecision,
    SlaMetricName,
    agent_notice_id,
)
from services.router.book import CaseBook, CaseRecord
from services.router.clocks import Clocks
from services.router.guidance import covers
from services.router.outcome import ROUTER, Outcome
from services.router.priority import PriorityWeights, band_floor, raised
from services.router.roster import AgentProfile, Roster, hash_token
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

MAX_ROUTING_LOG = 20
TOP_CANDIDATES = 5


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


class Assignment:
    """The agents of one partition, their index and the team queues, and the rules that give
    a case to an agent or take it back."""

    def __init__(
        self,
        roster: Roster,
        *,
        book: CaseBook,
        clocks: Clocks,
        rules: RoutingRules,
        weights: PriorityWeights,
        queue_order: QueueOrder,
        offer_timeout: timedelta,
        lapses_before_away: int,
    ) -> None:
        self.roster = roster
        self.book = book
        self.clocks = clocks
        self.rules = rules
        self.weights = weights
        self.offer_timeout = offer_timeout
        self.lapses_before_away = lapses_before_away
        self.configured = {profile.id: profile for profile in roster.agents}
        self.agents: dict[str, AgentState] = {}
        self.agent_records: dict[str, AgentRecord] = {}
        self.index = AgentIndex()
        self.queues: dict[str, TeamQueue] = {
            team.id: TeamQueue(weights.aging_points_per_minute, queue_order)
            for team in roster.teams
        }
        self._by_token: dict[str, str] = {}
        self._languages: dict[str, set[str]] = {}
        self._team_size: dict[str, int] = {}
        self._authority: dict[tuple[str, AgentTier], dict[RemedyKind, float]] = {}

    # ------------------------------------------------------------------ state

    def reset(self, agents: list[AgentRecord]) -> None:
        """The roster's agents, with what changed at runtime from the stored ``agents``; the
        queues emptied (cases are filed again as they are loaded)."""
        self.agent_records = {p.id: fresh_agent(p) for p in self.roster.agents}
        for record in agents:
            # The roster file says who an agent is, their token and tier (editing it revokes or
            # rotates a token); the stored record keeps what changed at runtime.
            configured = self.configured.get(record.profile.id)
            if configured is not None:
                profile = with_identity(record.profile, configured)
                self.agent_records[configured.id] = record.model_copy(update={"profile": profile})
        self.agents = {}
        self.index = AgentIndex()
        for record in self.agent_records.values():
            if not record.removed:
                self.agents[record.profile.id] = state_of(record)
        for queue in self.queues.values():
            for case_id in list(queue):
                queue.discard(case_id)

    def load(self, record: CaseRecord) -> None:
        """A loaded case goes back to its agent or its queue."""
        case = record.case
        holder = case.offer.agent_id if case.offer else case.assignee
        if case.is_open and holder and holder in self.agents:
            self.hold(self.agents[holder], case)
        if case.state == CaseState.QUEUED and case.team in self.queues:
            self.queue(case)

    def index_all(self) -> None:
        for agent in self.agents.values():
            self.index.update(agent, self.rules)

    def agent_by_token(self, token: str) -> AgentProfile | None:
        """The agent whose API token this is (tokens are kept only as sha256 digests)."""
        agent_id = self._by_token.get(hash_token(token))
        state = self.agents.get(agent_id) if agent_id else None
        return state.profile if state else None

    def roster_changed(self) -> None:
        """Per-team facts about the roster that routing asks for on every decision, and the
        token index the API authenticates with."""
        self._by_token = {
            a.profile.token_sha256: a.id for a in self.agents.values() if a.profile.token_sha256
        }
        self._languages = {}
        self._team_size = {}
        self._authority = {}
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
                record = self.book.records.get(case_id)
                if record is not None and record.case.state == CaseState.QUEUED:
                    self.queue(record.case)

    # ------------------------------------------------------------------ routing

    def route(
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
        if held(case):
            self.enqueue(record, now, out)
            return
        chosen, made = self.choose(case, now, prefer=prefer)
        if rule_prefix:
            made.rule = f"{rule_prefix}; {made.rule}"
        self.log_decision(case, made)
        if chosen is None:
            self.enqueue(record, now, out)
            return
        self.offer(record, chosen, now, out)

    def choose(
        self, case: Case, now: datetime, *, prefer: str | None = None
    ) -> tuple[AgentState | None, RoutingDecision]:
        if prefer is not None and prefer in self.agents:
            agent = self.agents[prefer]
            if exclusion(agent, case, self.rules) is None:
                return agent, decision(
                    case, now, "offered", agent, "previous agent of the case", [agent], {}
                )
        language_required = case.language is None or self.team_speaks(case)
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
            return None, decision(case, now, "queued", None, "no eligible agent", [], excluded)
        # Within the lowest sufficient tier the index order is already proficiency, load, idle.
        best_tier = min(TIER_RANK[a.profile.tier] for _, a in eligible)
        same_tier = [(p, a) for p, a in eligible if TIER_RANK[a.profile.tier] == best_tier]
        chosen = same_tier[0][1]
        rule = "lowest sufficient tier, best proficiency, least loaded, longest idle"
        if not language_required:
            rule += f" (no agent of the team speaks '{case.language}')"
        return chosen, decision(
            case, now, "offered", chosen, rule, [a for _, a in eligible], excluded
        )

    def queue(self, case: Case) -> None:
        """File (or file again) a waiting case in its team's queue."""
        if held(case):  # offered once reviewed
            self.queues[case.team].discard(case.case_id)
            return
        language = case.language if case.language and self.team_speaks(case) else ANY_LANGUAGE
        # The clocks as of now (``case.deadlines`` is refreshed only when an event is emitted).
        record = self.book.records.get(case.case_id)
        deadlines = self.clocks.deadlines(record) if record is not None else None
        self.queues[case.team].add(case, language, deadlines)

    def team_speaks(self, case: Case) -> bool:
        return case.language in self._languages.get(case.team, set())

    def offer(self, record: CaseRecord, agent: AgentState, now: datetime, out: Outcome) -> None:
        case = record.case
        self.queues[case.team].discard(case.case_id)
        case.state = CaseState.OFFERED
        case.offer = Offer(agent_id=agent.id, offered_at=now, expires_at=now + self.offer_timeout)
        # Counted when offered, so outstanding offers cannot add up past the limit.
        agent.hostile_streak = agent.hostile_streak + 1 if case.hostile else 0
        self.hold(agent, case)
        self.touch_agent(agent, out)
        out.cases.add(case.case_id)
        self.clocks.emit(record, CaseEventType.OFFERED, now, out, agent_id=agent.id)
        self.clocks.schedule(record, self.book.due)

    def enqueue(self, record: CaseRecord, now: datetime, out: Outcome) -> None:
        case = record.case
        case.state = CaseState.QUEUED
        case.offer = None
        if case.queued_at is None:
            case.queued_at = now
        self.queue(case)
        out.cases.add(case.case_id)
        self.clocks.emit(record, CaseEventType.QUEUED, now, out)
        self.clocks.schedule(record, self.book.due)

    def drain(self, agent: AgentState, now: datetime, out: Outcome) -> None:
        """Offer waiting cases to an agent with room: the highest eligible first."""
        if agent.presence != Presence.AVAILABLE:
            return
        queue = self.queues.get(agent.profile.team)
        if queue is None:
            return
        records = self.book.records

        def eligible(case_id: uuid.UUID) -> bool:
            record = records.get(case_id)
            if record is None:
                return False
            case = record.case
            language_required = case.language is None or self.team_speaks(case)
            return exclusion(agent, case, self.rules, language_required=language_required) is None

        while True:
            case_id = queue.first(agent, self.rules, eligible)
            if case_id is None:
                return
            record = records[case_id]
            made = decision(
                record.case,
                now,
                "offered",
                agent,
                "capacity freed: highest waiting case first",
                [agent],
                {},
            )
            self.log_decision(record.case, made)
            self.offer(record, agent, now, out)

    def log_decision(self, case: Case, made: RoutingDecision) -> None:
        """Add a decision to the case's bounded routing log."""
        case.routing = [*case.routing, made][-MAX_ROUTING_LOG:]

    # ------------------------------------------------------------------ holding

    def hold(self, agent: AgentState, case: Case) -> None:
        weight = case_weight(case, self.rules)
        previous = agent.holding.get(case.case_id)
        if previous is not None:
            agent.load[case.channel] = agent.load.get(case.channel, 0.0) - previous
        agent.holding[case.case_id] = weight
        agent.load[case.channel] = agent.load.get(case.channel, 0.0) + weight
        self.index.update(agent, self.rules)

    def unhold(self, agent: AgentState, case: Case) -> None:
        weight = agent.holding.pop(case.case_id, None)
        if weight is not None and case.hostile and case.state == CaseState.OFFERED:
            # A hostile offer not taken does not count towards the run of hostile cases.
            agent.hostile_streak = max(0, agent.hostile_streak - 1)
        if weight is not None:
            agent.load[case.channel] = max(0.0, agent.load.get(case.channel, 0.0) - weight)
            self.index.update(agent, self.rules)

    def holder(self, case: Case) -> AgentState | None:
        holder = case.offer.agent_id if case.offer else case.assignee
        return self.agents.get(holder) if holder else None

    def release(self, case: Case) -> AgentState | None:
        agent = self.holder(case)
        if agent is not None:
            self.unhold(agent, case)
        return agent

    def detach(self, record: CaseRecord, now: datetime) -> AgentState | None:
        """Take a case from its agent (offer or assignment): it waits again, its resolution
        clock running; returns the agent who had it."""
        case = record.case
        agent = self.release(case)
        case.offer = None
        case.assignee = None
        if case.state == CaseState.WAITING_ON_CUSTOMER:
            self.clocks.resume(record, SlaMetricName.RESOLUTION, now)
        case.state = CaseState.QUEUED
        return agent

    def return_to_queue(
        self, record: CaseRecord, now: datetime, out: Outcome, *, reason: str, reroute: bool = True
    ) -> AgentState | None:
        """Take a case back from its agent (offer or assignment) and route it again."""
        agent = self.detach(record, now)
        previous = agent.id if agent else None
        self.clocks.emit(record, CaseEventType.RETURNED, now, out, agent_id=previous, reason=reason)
        if reroute:
            self.route(record, now, out, rule_prefix=reason)
        if agent is not None:
            out.agents.add(agent.id)
        return agent

    # ------------------------------------------------------------------ escalation

    def escalate_for_authority(self, record: CaseRecord, now: datetime, out: Outcome) -> None:
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
                    self.clocks.emit(
                        record,
                        CaseEventType.ESCALATED,
                        now,
                        out,
                        reason="authority",
                        cause="authority",
                        to_tier=tier.value,
                    )
                return

    def escalate(
        self,
        record: CaseRecord,
        now: datetime,
        out: Outcome,
        *,
        reason: str,
        cause: str,
        actor: str = ROUTER,
    ) -> None:
        """Raise the case's required tier by one; an agent below it hands the case back."""
        case = record.case
        tiers = list(AgentTier)
        if case.required_tier == AgentTier.SUPERVISOR:
            return
        case.required_tier = tiers[TIER_RANK[case.required_tier] + 1]
        case.escalations += 1
        case.declined_by = []
        self.clocks.emit(
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
        holder = self.holder(case)
        if holder is not None and TIER_RANK[holder.profile.tier] >= TIER_RANK[case.required_tier]:
            return
        if case.state == CaseState.QUEUED:
            self.queues[case.team].discard(case.case_id)
            self.route(record, now, out, rule_prefix=f"escalated ({reason})")
        else:
            agent = self.return_to_queue(record, now, out, reason=f"escalated ({reason})")
            if agent is not None:
                self.drain(agent, now, out)

    def raise_priority(
        self, record: CaseRecord, now: datetime, out: Outcome, *, reason: str
    ) -> None:
        """A service-level warning or breach raises the case's priority one band."""
        case = record.case
        new = raised(case.priority)
        if new == case.priority:
            return
        previous = case.priority
        case.priority = new
        case.priority_score = max(case.priority_score, band_floor(new, self.weights))
        if case.state == CaseState.QUEUED:
            self.queue(case)
        self.clocks.emit(
            record,
            CaseEventType.PRIORITY_RAISED,
            now,
            out,
            reason=reason,
            from_priority=previous.value,
            to_priority=new.value,
        )

    # ------------------------------------------------------------------ presence

    def touch_agent(self, agent: AgentState, out: Outcome) -> None:
        """Copy what changed of an agent to the record the worker stores."""
        record = self.agent_records[agent.id]
        record.presence = agent.presence
        record.presence_since = agent.presence_since
        record.hostile_streak = agent.hostile_streak
        record.last_assigned_at = agent.last_assigned_at
        record.lapsed_offers = agent.lapsed_offers
        record.away_reason = agent.away_reason
        out.agents.add(agent.id)

    def set_presence(
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
        self.touch_agent(agent, out)
        self.index.update(agent, self.rules)
        if presence in (Presence.AWAY, Presence.OFFLINE, Presence.BUSY):
            for case_id in list(agent.holding):
                record = self.book.records.get(case_id)
                if record is None:
                    continue
                offered = record.case.state == CaseState.OFFERED
                if offered or presence == Presence.OFFLINE:
                    self.return_to_queue(record, now, out, reason=f"agent {presence.value}")
        if presence == Presence.AVAILABLE:
            self.drain(agent, now, out)

    def lapsed(self, agent: AgentState, now: datetime, out: Outcome) -> None:
        """An offer to the agent expired unanswered: after ``lapses_before_away`` in a row, an
        available agent has walked away, and each further offer would cost a customer the
        whole offer timeout."""
        agent.lapsed_offers += 1
        self.touch_agent(agent, out)
        limit = self.lapses_before_away
        if limit and agent.lapsed_offers >= limit and agent.presence == Presence.AVAILABLE:
            self.set_away(agent, AwayReason.OFFERS_LAPSED, now, out)

    def set_away(self, agent: AgentState, reason: AwayReason, now: datetime, out: Outcome) -> None:
        """The router sets an absent agent away (their offers return to the queue) and says so
        on ``agents.events``."""
        lapsed = agent.lapsed_offers
        self.set_presence(agent, Presence.AWAY, now, out, reason=reason)
        agent.lapsed_offers = lapsed  # kept while away, for the floor: reset on their return
        self.touch_agent(agent, out)
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


def decision(
    case: Case,
    now: datetime,
    outcome: Literal["offered", "queued", "assigned"],
    agent: AgentState | None,
    rule: str,
    eligible: list[AgentState],
    excluded: dict[str, int],
) -> RoutingDecision:
    """A routing decision as the case's log keeps it, with the best candidates considered."""
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


def held(case: Case) -> bool:
    """Waiting for a supervisor's review before it is offered."""
    review = case.review
    return review is not None and review.hold and review.status == "pending"


def fresh_agent(profile: AgentProfile) -> AgentRecord:
    return AgentRecord(profile=profile, presence=profile.presence)


def state_of(record: AgentRecord) -> AgentState:
    return AgentState(
        profile=record.profile,
        presence=record.presence,
        hostile_streak=record.hostile_streak,
        last_assigned_at=record.last_assigned_at,
        presence_since=record.presence_since,
        lapsed_offers=record.lapsed_offers,
        away_reason=record.away_reason,
    )


def with_identity(profile: AgentProfile, configured: AgentProfile) -> AgentProfile:
    """A profile with the roster file's name, tier and token."""
    return profile.model_copy(
        update={
            "name": configured.name,
            "tier": configured.tier,
            "token_sha256": configured.token_sha256,
        }
    )
