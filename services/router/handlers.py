"""One function per command: the checks a command must pass and the change it makes.

A case command's handler gets the case's record whole and the acting agent (already allowed to
act on the case, and the command not yet applied) and returns a refusal, or ``None`` once it
made its change; :func:`on_command` does what every command shares.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, assert_never

from services.common.cases import (
    TIER_RANK,
    AgentTier,
    AwayReason,
    Case,
    CaseEventType,
    CaseMessage,
    CaseState,
    IncidentTag,
    Presence,
    Priority,
    SlaMetricName,
)
from services.common.messages import Correction
from services.router import floors, sla
from services.router.assignment import (
    AgentRecord,
    decision,
    held,
    state_of,
    with_identity,
)
from services.router.book import CaseRecord
from services.router.commands import (
    Accept,
    Action,
    CaseCommand,
    Command,
    CommandBase,
    CommandResult,
    Csat,
    Decline,
    Disconnected,
    Escalate,
    IncidentTagged,
    Labels,
    OnCase,
    OnFloor,
    Reassign,
    Relabel,
    RemoveAgent,
    Resolve,
    Respond,
    Resume,
    SetPresence,
    Status,
    TagIncident,
    Transfer,
    UpsertAgent,
    Wait,
)
from services.router.guidance import HOSTILE, estimate_remedy, handling_guidance
from services.router.outcome import Outcome
from services.router.priority import band, score_components
from services.router.roster import AgentProfile
from services.router.routing import AgentState

if TYPE_CHECKING:
    from services.router.engine import Engine

CORRECTION_NAMESPACE = uuid.UUID("0f4d1c52-7a0e-4b8e-9a43-3d2f6c1b9e21")
MAX_COMMAND_IDS = 50


def on_command(e: Engine, cmd: Command, now: datetime, out: Outcome) -> CommandResult:
    """Apply a command: who may act on what, repeats, and the handler of its action."""
    actor = e.agents.get(cmd.actor)
    if actor is None:
        return result(cmd, Status.FORBIDDEN, "unknown agent")
    if not isinstance(cmd, CaseCommand):
        return on_floor(e, cmd, actor, now, out)
    record = e.book.whole(cmd.case_id)
    if record is None:
        return result(cmd, Status.NOT_FOUND, "no such case")
    case = record.case
    supervisor = actor.profile.is_supervisor
    if not supervisor and cmd.actor not in (
        case.assignee,
        case.offer.agent_id if case.offer else None,
    ):
        return result(cmd, Status.FORBIDDEN, "not your case")
    if str(cmd.command_id) in record.commands:
        return result(cmd, Status.OK, "already applied", case)
    # CSAT is the customer's verdict on the agent's work: the agent does not record it.
    if cmd.action in (Action.REASSIGN, Action.RELABEL, Action.CSAT) and not supervisor:
        return result(cmd, Status.FORBIDDEN, "supervisors only")
    problem = on_case(e, record, cmd, actor, now, out)
    if problem is not None:
        return problem
    record.commands = [*record.commands, str(cmd.command_id)][-MAX_COMMAND_IDS:]
    out.cases.add(case.case_id)
    e.clocks.schedule(record, e.book.due)
    return result(cmd, Status.OK, "", case)


def on_case(
    e: Engine, record: CaseRecord, cmd: OnCase, actor: AgentState, now: datetime, out: Outcome
) -> CommandResult | None:
    """The handler of a case command's action: a refusal, or ``None`` once it made its change."""
    match cmd:
        case Accept():
            return accept(e, record, cmd, actor, now, out)
        case Decline():
            return decline(e, record, cmd, actor, now, out)
        case Respond():
            return respond(e, record, cmd, actor, now, out)
        case Wait():
            return wait(e, record, cmd, actor, now, out)
        case Resume():
            return resume_cmd(e, record, cmd, actor, now, out)
        case Resolve():
            return resolve(e, record, cmd, actor, now, out)
        case Transfer():
            return transfer(e, record, cmd, actor, now, out)
        case Escalate():
            return escalate(e, record, cmd, actor, now, out)
        case Reassign():
            return reassign(e, record, cmd, actor, now, out)
        case Csat():
            return csat(e, record, cmd, actor, now, out)
        case Relabel():
            return relabel(e, record, cmd, actor, now, out)
        case _:
            assert_never(cmd)


def on_floor(
    e: Engine, cmd: OnFloor, actor: AgentState, now: datetime, out: Outcome
) -> CommandResult:
    """The handler of a command on no case."""
    match cmd:
        case SetPresence():
            return presence(e, cmd, actor, now, out)
        case UpsertAgent():
            return upsert_agent(e, cmd, actor, now, out)
        case RemoveAgent():
            return remove_agent(e, cmd, actor, now, out)
        case Disconnected():
            return disconnected(e, cmd, actor, now, out)
        case TagIncident():
            return tag_incident(e, cmd, actor, now, out)
        case _:
            assert_never(cmd)


# ---------------------------------------------------------------------- case commands


def accept(
    e: Engine, record: CaseRecord, cmd: Accept, actor: AgentState, now: datetime, out: Outcome
) -> CommandResult | None:
    case = record.case
    if case.state != CaseState.OFFERED or case.offer is None:
        return result(cmd, Status.CONFLICT, f"case is {case.state}, not offered")
    if case.offer.agent_id != actor.id:
        return result(cmd, Status.FORBIDDEN, "not offered to you")
    case.state = CaseState.ASSIGNED
    case.assignee = actor.id
    case.offer = None
    case.assigned_at = case.assigned_at or now
    case.queued_at = None
    if actor.id not in case.agents_involved:
        case.agents_involved = [*case.agents_involved, actor.id]
    actor.last_assigned_at = now
    actor.lapsed_offers = 0
    e.assign.touch_agent(actor, out)
    e.assign.index.update(actor, e.rules)
    e.clocks.emit(record, CaseEventType.ASSIGNED, now, out, agent_id=actor.id, actor=actor.id)
    return None


def decline(
    e: Engine, record: CaseRecord, cmd: Decline, actor: AgentState, now: datetime, out: Outcome
) -> CommandResult | None:
    case = record.case
    if case.state != CaseState.OFFERED or case.offer is None:
        return result(cmd, Status.CONFLICT, f"case is {case.state}, not offered")
    if case.offer.agent_id != actor.id:
        return result(cmd, Status.FORBIDDEN, "not offered to you")
    e.assign.release(case)
    case.offer = None
    case.declined_by = [*case.declined_by, actor.id]
    actor.lapsed_offers = 0
    e.clocks.emit(
        record,
        CaseEventType.OFFER_DECLINED,
        now,
        out,
        agent_id=actor.id,
        actor=actor.id,
        reason=cmd.reason,
    )
    e.assign.route(record, now, out, rule_prefix="offer declined")
    e.assign.drain(actor, now, out)
    return None


def respond(
    e: Engine, record: CaseRecord, cmd: Respond, actor: AgentState, now: datetime, out: Outcome
) -> CommandResult | None:
    case = record.case
    if case.state not in (CaseState.ASSIGNED, CaseState.WAITING_ON_CUSTOMER):
        return result(cmd, Status.CONFLICT, f"case is {case.state}; accept it first")
    first = case.first_response_at is None
    case.first_response_at = case.first_response_at or now
    case.last_response_at = now
    e.clocks.stop(record, SlaMetricName.FIRST_RESPONSE, now, out)
    e.clocks.stop(record, SlaMetricName.NEXT_RESPONSE, now, out)
    e.clocks.emit(
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


def wait(
    e: Engine, record: CaseRecord, cmd: Wait, actor: AgentState, now: datetime, out: Outcome
) -> CommandResult | None:
    case = record.case
    if case.state != CaseState.ASSIGNED:
        return result(cmd, Status.CONFLICT, f"case is {case.state}, not assigned")
    case.state = CaseState.WAITING_ON_CUSTOMER
    e.clocks.pause(record, SlaMetricName.RESOLUTION, now)
    e.clocks.pause(record, SlaMetricName.NEXT_RESPONSE, now)
    e.clocks.emit(
        record,
        CaseEventType.WAITING_ON_CUSTOMER,
        now,
        out,
        agent_id=actor.id,
        actor=actor.id,
        reason=cmd.reason,
    )
    return None


def resume_cmd(
    e: Engine, record: CaseRecord, cmd: Resume, actor: AgentState, now: datetime, out: Outcome
) -> CommandResult | None:
    if record.case.state != CaseState.WAITING_ON_CUSTOMER:
        return result(cmd, Status.CONFLICT, f"case is {record.case.state}, not waiting")
    resume(e, record, now, out, actor=actor.id)
    return None


def resume(e: Engine, record: CaseRecord, now: datetime, out: Outcome, *, actor: str) -> None:
    """A case waiting on the customer is worked again (the agent says so, or the customer
    wrote); an agent gone offline meanwhile hands it back."""
    case = record.case
    case.state = CaseState.ASSIGNED
    e.clocks.resume(record, SlaMetricName.RESOLUTION, now)
    e.clocks.resume(record, SlaMetricName.NEXT_RESPONSE, now)
    e.clocks.emit(record, CaseEventType.RESUMED, now, out, actor=actor, agent_id=case.assignee)
    holder = e.assign.holder(case)
    if holder is not None and holder.presence == Presence.OFFLINE:
        e.assign.return_to_queue(record, now, out, reason="agent offline")


def resolve(
    e: Engine, record: CaseRecord, cmd: Resolve, actor: AgentState, now: datetime, out: Outcome
) -> CommandResult | None:
    case = record.case
    if case.state not in (CaseState.ASSIGNED, CaseState.WAITING_ON_CUSTOMER):
        return result(cmd, Status.CONFLICT, f"case is {case.state}; accept it first")
    agent = e.assign.release(case)
    if case.state == CaseState.WAITING_ON_CUSTOMER:
        e.clocks.resume(record, SlaMetricName.RESOLUTION, now)
    case.state = CaseState.RESOLVED
    case.resolved_at = now
    case.resolution_note = cmd.note
    for metric in (
        SlaMetricName.FIRST_RESPONSE,
        SlaMetricName.NEXT_RESPONSE,
        SlaMetricName.RESOLUTION,
    ):
        e.clocks.stop(record, metric, now, out)
    e.clocks.start(record, SlaMetricName.FOLLOW_UP, now)
    follow = record.clocks.get(SlaMetricName.FOLLOW_UP)
    case.follow_up_due_at = (
        sla.due_at(follow, e.clocks.calendar(case)) if follow is not None else None
    )
    e.clocks.emit(
        record,
        CaseEventType.RESOLVED,
        now,
        out,
        agent_id=actor.id,
        actor=actor.id,
        first_contact=case.first_contact_resolution,
    )
    e.book.resolved(case)
    if agent is not None:
        out.agents.add(agent.id)
        e.assign.drain(agent, now, out)
    return None


def transfer(
    e: Engine, record: CaseRecord, cmd: Transfer, actor: AgentState, now: datetime, out: Outcome
) -> CommandResult | None:
    case = record.case
    if not case.is_open:
        return result(cmd, Status.CONFLICT, "case is resolved")
    if cmd.to_team is not None and e.roster.team(cmd.to_team) is None:
        return result(cmd, Status.INVALID, f"no team '{cmd.to_team}'")
    target = e.agents.get(cmd.to_agent) if cmd.to_agent else None
    if cmd.to_agent is not None and target is None:
        return result(cmd, Status.INVALID, f"no agent '{cmd.to_agent}'")
    previous = e.assign.detach(record, now)
    case.transfers += 1
    if target is not None:
        case.team = target.profile.team
    elif cmd.to_team is not None:
        case.team = cmd.to_team
    e.clocks.emit(
        record,
        CaseEventType.TRANSFERRED,
        now,
        out,
        actor=actor.id,
        agent_id=previous.id if previous else None,
        to_team=case.team,
        to_agent=cmd.to_agent,
        reason=cmd.reason,
        to_floor=e.roster.floor_of(case.team) if case.team not in e.teams else None,
    )
    if case.team not in e.teams:  # another floor's team: the case goes there
        floors.move_case(e, record, e.roster.floor_of(case.team), now, out)
    else:
        e.assign.escalate_for_authority(record, now, out)
        e.assign.route(
            record,
            now,
            out,
            prefer=target.id if target else None,
            rule_prefix=f"transferred by {actor.id}",
        )
    if previous is not None:
        out.agents.add(previous.id)
        e.assign.drain(previous, now, out)
    return None


def escalate(
    e: Engine, record: CaseRecord, cmd: Escalate, actor: AgentState, now: datetime, out: Outcome
) -> CommandResult | None:
    case = record.case
    if not case.is_open:
        return result(cmd, Status.CONFLICT, "case is resolved")
    if case.required_tier == AgentTier.SUPERVISOR:
        return result(cmd, Status.CONFLICT, "already at supervisor level")
    e.assign.escalate(
        record, now, out, reason=cmd.reason or "agent request", cause="agent", actor=actor.id
    )
    return None


def reassign(
    e: Engine, record: CaseRecord, cmd: Reassign, actor: AgentState, now: datetime, out: Outcome
) -> CommandResult | None:
    case = record.case
    if not case.is_open:
        return result(cmd, Status.CONFLICT, "case is resolved")
    target = e.agents.get(cmd.to_agent)
    if target is None:
        return result(cmd, Status.INVALID, f"no agent '{cmd.to_agent}'")
    if target.presence == Presence.OFFLINE:
        return result(cmd, Status.CONFLICT, f"{target.id} is offline")
    previous = e.assign.detach(record, now)
    e.queues[case.team].discard(case.case_id)
    case.team = target.profile.team
    case.state = CaseState.ASSIGNED
    case.assignee = target.id
    case.assigned_at = case.assigned_at or now
    case.queued_at = None
    if target.id not in case.agents_involved:
        case.agents_involved = [*case.agents_involved, target.id]
    case.transfers += 1
    e.assign.hold(target, case)
    target.last_assigned_at = now
    e.assign.touch_agent(target, out)
    e.assign.log_decision(
        case, decision(case, now, "assigned", target, f"reassigned by {actor.id}", [target], {})
    )
    e.clocks.emit(
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
        e.assign.drain(previous, now, out)
    return None


def csat(
    e: Engine, record: CaseRecord, cmd: Csat, actor: AgentState, now: datetime, out: Outcome
) -> CommandResult | None:
    case = record.case
    if case.state != CaseState.RESOLVED:
        return result(cmd, Status.CONFLICT, "CSAT is recorded after resolution")
    case.csat = cmd.score
    e.clocks.emit(record, CaseEventType.CSAT_RECORDED, now, out, actor=actor.id, score=cmd.score)
    return None


def relabel(
    e: Engine, record: CaseRecord, cmd: Relabel, actor: AgentState, now: datetime, out: Outcome
) -> CommandResult | None:
    """A supervisor corrects the tags (or, for a case in the review lane, confirms them):
    what follows from the tags is derived again, and a case whose team changed is routed
    in its new team."""
    case = record.case
    labels = cmd.labels
    given = labels.model_dump(exclude_none=True)
    pending = case.review is not None and case.review.status == "pending"
    if not given and not pending:
        return result(cmd, Status.INVALID, "give at least one label")
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
    reprioritise(e, case)
    team = e.roster.team_for(case.category)
    moved = case.is_open and team != case.team
    if moved:
        detail["team_from"] = case.team
    released = held(case)
    if pending:
        assert case.review is not None
        case.review = case.review.model_copy(
            update={"status": "done", "reviewed_by": actor.id, "reviewed_at": now}
        )
        e.clocks.stop(record, SlaMetricName.REVIEW, now, out)
        detail["reviewed"] = "true"
    e.clocks.emit(
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
        previous = e.assign.detach(record, now)
        case.team = team
        if team not in e.teams:  # another floor's team: the case goes there
            floors.move_case(e, record, e.roster.floor_of(team), now, out)
        else:
            e.assign.escalate_for_authority(record, now, out)
            e.assign.route(record, now, out, rule_prefix=f"relabelled by {actor.id}: team {team}")
        if previous is not None:
            out.agents.add(previous.id)
            e.assign.drain(previous, now, out)
        return None
    if case.is_open:
        e.assign.escalate_for_authority(record, now, out)
    holder = e.assign.holder(case)
    if case.is_open and case.hostile and holder is not None and not holder.profile.hostile:
        e.assign.return_to_queue(record, now, out, reason="relabelled hostile")
    elif released and case.state == CaseState.QUEUED:
        e.assign.route(record, now, out, rule_prefix=f"reviewed by {actor.id}")
    elif case.state == CaseState.QUEUED:
        e.assign.queue(case)
    return None


def reprioritise(e: Engine, case: Case) -> None:
    """The priority the case's tags give now (a supervisor's correction can lower it);
    a rise a service-level warning gave is kept."""
    latest = case.messages[-1]
    weights = e.settings.weights
    components = score_components(
        sentiment_score=latest.sentiment_score,
        difficult=case.difficult,
        tier=case.customer_tier,
        category=case.category,
        public=latest.public,
        reach=latest.reach,
        repeat_complainer=case.history.repeat_complainer,
        remedy=case.remedy,
        weights=weights,
    )
    score = round(sum(c.points for c in components), 2)
    base = band(score, weights)
    order = list(Priority)
    was_raised = order.index(case.priority) < order.index(case.base_priority)
    case.priority_score = score
    case.priority_components = components
    case.base_priority = base
    if not was_raised or order.index(base) < order.index(case.priority):
        case.priority = base


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


# ---------------------------------------------------------------------- commands on no case


def tag_incident(
    e: Engine, cmd: TagIncident, actor: AgentState, now: datetime, out: Outcome
) -> CommandResult:
    """Tie the cases holding the given messages to an incident (the members of an emerging
    cluster), open or resolved: agents see the reference on each case they work."""
    if not actor.profile.is_supervisor:
        return result(cmd, Status.FORBIDDEN, "supervisors only")
    tag = IncidentTag(
        reference=cmd.incident.reference,
        note=cmd.incident.note,
        tagged_by=actor.id,
        tagged_at=now,
    )
    missing: list[uuid.UUID] = []
    cases: dict[uuid.UUID, None] = {}
    for event_id in dict.fromkeys(cmd.event_ids):
        case_id = e.book.by_event.get(event_id)
        if case_id is None:
            missing.append(event_id)
        else:
            cases[case_id] = None
    tagged: list[uuid.UUID] = []
    unchanged: list[uuid.UUID] = []
    for case_id in cases:
        record = e.book.whole(case_id)
        if record is None:
            continue
        case = record.case
        current = case.incident
        if str(cmd.command_id) in record.commands or (
            current is not None and (current.reference, current.note) == (tag.reference, tag.note)
        ):
            unchanged.append(case_id)
            continue
        case.incident = tag
        e.clocks.emit(
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
    done = result(cmd, Status.OK)
    return done.model_copy(
        update={
            "incident": IncidentTagged(
                reference=tag.reference, tagged=tagged, unchanged=unchanged, missing=missing
            )
        }
    )


def presence(
    e: Engine, cmd: SetPresence, actor: AgentState, now: datetime, out: Outcome
) -> CommandResult:
    target_id = cmd.to_agent or actor.id
    if target_id != actor.id and not actor.profile.is_supervisor:
        return result(cmd, Status.FORBIDDEN, "supervisors only")
    target = e.agents.get(target_id)
    if target is None:
        return result(cmd, Status.NOT_FOUND, "no such agent")
    e.assign.set_presence(target, cmd.presence, now, out)
    return result(cmd, Status.OK)


def disconnected(
    e: Engine, cmd: Disconnected, actor: AgentState, now: datetime, out: Outcome
) -> CommandResult:
    # Applied only if the agent is still available when it reaches the inbox.
    if actor.presence == Presence.AVAILABLE:
        e.assign.set_away(actor, AwayReason.DISCONNECTED, now, out)
    return result(cmd, Status.OK)


def upsert_agent(
    e: Engine, cmd: UpsertAgent, actor: AgentState, now: datetime, out: Outcome
) -> CommandResult:
    if not actor.profile.is_supervisor:
        return result(cmd, Status.FORBIDDEN, "supervisors only")
    if cmd.profile.team not in e.teams:
        if e.roster.team(cmd.profile.team) is not None:
            floor = e.roster.floor_of(cmd.profile.team)
            message = f"team '{cmd.profile.team}' is on floor '{floor}': move agents between "
            return result(cmd, Status.INVALID, message + "floors in the roster file")
        return result(cmd, Status.INVALID, f"no team '{cmd.profile.team}'")
    configured = e.configured.get(cmd.profile.id)
    if configured is None:
        return result(cmd, Status.INVALID, "agents are added in the roster file")
    problem = _identity_change(cmd.profile, configured)
    if problem is not None:
        return result(cmd, Status.INVALID, problem)
    _upsert(e, with_identity(cmd.profile, configured), now, out)
    return result(cmd, Status.OK)


def remove_agent(
    e: Engine, cmd: RemoveAgent, actor: AgentState, now: datetime, out: Outcome
) -> CommandResult:
    if not actor.profile.is_supervisor:
        return result(cmd, Status.FORBIDDEN, "supervisors only")
    target = e.agents.get(cmd.to_agent)
    if target is None:
        return result(cmd, Status.NOT_FOUND, "no such agent")
    if target.id == actor.id:
        return result(cmd, Status.CONFLICT, "a supervisor cannot remove themselves")
    e.assign.set_presence(target, Presence.OFFLINE, now, out)
    record = e.agent_records[target.id]
    record.removed = True
    e.assign.index.remove(target.id)
    del e.agents[target.id]
    e.assign.roster_changed()
    out.agents.add(target.id)
    return result(cmd, Status.OK)


def _upsert(e: Engine, profile: AgentProfile, now: datetime, out: Outcome) -> None:
    assign = e.assign
    existing = assign.agents.get(profile.id)
    if existing is None:
        fresh = AgentRecord(profile=profile, presence=profile.presence, presence_since=now)
        assign.agent_records[profile.id] = fresh
        assign.agents[profile.id] = state_of(fresh)
        assign.index.update(assign.agents[profile.id], e.rules)
        assign.roster_changed()
        out.agents.add(profile.id)
        assign.drain(assign.agents[profile.id], now, out)
        return
    existing.profile = profile
    assign.agent_records[profile.id].profile = profile
    assign.roster_changed()
    out.agents.add(profile.id)
    # Work the agent may no longer hold (team, channel, authority) goes back to the queue.
    for case_id in list(existing.holding):
        record = e.book.records.get(case_id)
        if record is None:
            continue
        case = record.case
        if (
            case.team != profile.team
            or case.channel not in profile.channels
            or TIER_RANK[profile.tier] < TIER_RANK[case.required_tier]
        ):
            assign.return_to_queue(record, now, out, reason="roster change")
    assign.index.update(existing, e.rules)
    assign.drain(existing, now, out)


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


def result(
    cmd: CommandBase, status: Status, message: str = "", case: Case | None = None
) -> CommandResult:
    return CommandResult(command_id=cmd.command_id, status=status, message=message, case=case)
