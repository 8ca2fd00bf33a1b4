"""A classified customer message reaches the router: it opens a case, joins the case of its
thread (which it can make more urgent or hostile), or reopens a recently resolved one."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from services.common.cases import (
    Case,
    CaseEventType,
    CaseMessage,
    CaseState,
    Priority,
    Review,
    SlaMetricName,
    case_id_for,
)
from services.common.messages import (
    Category,
    CustomerTier,
    DifficultType,
    Facts,
    FeedbackClassified,
)
from services.router.assignment import held
from services.router.book import CaseRecord, case_message, thread_keys
from services.router.guidance import HOSTILE, estimate_remedy, handling_guidance
from services.router.handlers import resume
from services.router.outcome import Outcome
from services.router.priority import band, score_components
from services.router.roster import ReviewPolicy

if TYPE_CHECKING:
    from services.router.engine import Engine

MAX_FACTS = 50


def on_feedback(e: Engine, fc: FeedbackClassified, now: datetime, out: Outcome) -> None:
    """Apply a classified message: a new case, or a message added to its thread's case."""
    event = fc.feedback
    new_case_id = case_id_for(event.event_id)
    if e.book.knows(event.event_id, new_case_id):
        out.duplicate = True
        return
    keys = thread_keys(fc)
    found = e.book.thread_case(fc.feedback.customer.id, keys, now)
    message = case_message(fc)
    if found is None:
        create(e, fc, message, keys, now, out)
        return
    record = e.book.whole(found)
    assert record is not None
    case = record.case
    e.book.add_message(case, message, keys)
    retag(e, record, fc, now, out)
    if fc.needs_review and (case.review is None or case.review.status == "done"):
        case.review = Review(status="pending", since=now)
    out.cases.add(case.case_id)
    if case.state == CaseState.RESOLVED:
        reopen(e, record, now, out)
        return
    e.clocks.emit(record, CaseEventType.MESSAGE_ADDED, now, out, actor="customer")
    if case.state == CaseState.WAITING_ON_CUSTOMER:
        resume(e, record, now, out, actor="customer")
    if case.first_response_at is not None:
        e.clocks.start(record, SlaMetricName.NEXT_RESPONSE, now, restart=False)
        if case.state == CaseState.QUEUED:
            e.assign.queue(case)  # a new deadline: filed again
    e.clocks.schedule(record, e.book.due)


def create(
    e: Engine,
    fc: FeedbackClassified,
    message: CaseMessage,
    keys: list[str],
    now: datetime,
    out: Outcome,
) -> None:
    """A new case for the message (its id is the message's), scored, clocked and routed."""
    event = fc.feedback
    weights = e.settings.weights
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
        weights=weights,
    )
    score = round(sum(c.points for c in components), 2)
    priority = band(score, weights)
    language = fc.facts.language or _base_language(event.customer.language)
    case = Case(
        case_id=case_id_for(event.event_id),
        state=CaseState.QUEUED,
        team=e.team_for(category),
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
    e.book.create(record, event.event_id, keys)
    if fc.needs_review:
        team = e.teams.get(case.team)
        hold = team is not None and team.review == ReviewPolicy.HOLD
        case.review = Review(status="pending", since=now, hold=hold)
    e.clocks.start(record, SlaMetricName.FIRST_RESPONSE, now)
    e.clocks.start(record, SlaMetricName.RESOLUTION, now)
    if held(case):
        e.clocks.start(record, SlaMetricName.REVIEW, now)
    out.cases.add(case.case_id)
    e.clocks.emit(record, CaseEventType.CREATED, now, out, actor="customer")
    e.assign.escalate_for_authority(record, now, out)
    e.assign.route(record, now, out)


def retag(
    e: Engine, record: CaseRecord, fc: FeedbackClassified, now: datetime, out: Outcome
) -> None:
    """A new message can make a case more urgent or more hostile, never less."""
    case = record.case
    weights = e.settings.weights
    difficult = DifficultType(fc.difficult.label)
    if difficult in HOSTILE and not case.hostile:
        # The load an agent carries for a case is fixed when it is offered; an agent not
        # marked for hostile customers hands the case back.
        case.hostile = True
        case.difficult = difficult
        case.guidance = handling_guidance(difficult)
        if case.state == CaseState.QUEUED:
            e.assign.queue(case)
        holder = e.assign.holder(case)
        if case.is_open and holder is not None and not holder.profile.hostile:
            e.assign.return_to_queue(record, now, out, reason="customer turned hostile")
    components = score_components(
        sentiment_score=fc.sentiment_score,
        difficult=difficult,
        tier=case.customer_tier,
        category=case.category,
        public=bool(fc.feedback.social and fc.feedback.social.public),
        reach=fc.feedback.social.reach if fc.feedback.social else None,
        repeat_complainer=fc.history.repeat_complainer,
        remedy=case.remedy,
        weights=weights,
    )
    score = round(sum(c.points for c in components), 2)
    if score > case.priority_score:
        case.priority_score = score
        case.priority_components = components
        new = band(score, weights)
        if list(Priority).index(new) < list(Priority).index(case.priority):
            case.priority = new
        if case.state == CaseState.QUEUED:
            e.assign.queue(case)


def reopen(e: Engine, record: CaseRecord, now: datetime, out: Outcome) -> None:
    """A reply to a recently resolved case reopens it, offered first to its last agent."""
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
    e.book.reopened(case)
    e.clocks.start(record, SlaMetricName.RESOLUTION, now, restart=True)
    e.clocks.start(record, SlaMetricName.NEXT_RESPONSE, now, restart=True)
    e.clocks.emit(record, CaseEventType.REOPENED, now, out, actor="customer", agent_id=previous)
    e.assign.route(record, now, out, prefer=previous, rule_prefix="reopened by customer reply")


def _base_language(tag: str | None) -> str | None:
    return tag.split("-", 1)[0].lower() if tag else None


def _bounded_facts(facts: Facts) -> Facts:
    if len(facts.amounts) <= MAX_FACTS and len(facts.references) <= MAX_FACTS:
        return facts
    return facts.model_copy(
        update={"amounts": facts.amounts[:MAX_FACTS], "references": facts.references[:MAX_FACTS]}
    )
