"""The review lane: cases whose tags need review, a team's `route` or `hold` policy, and a
relabel that re-derives team, priority, remedy and guidance and routes the case again."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from services.common.cases import Case, CaseState, Priority, RemedyKind, SlaMetricName
from services.router.commands import Action, Labels, Status, Tick
from services.router.engine import Engine, EngineSettings, Outcome
from tests.router.factories import SLA_YAML, T0, agent, command, feedback, roster, sla_config

TEAMS: list[dict[str, Any]] = [
    {"id": "care", "name": "Care", "categories": ["product_fault", "delay"], "review": "hold"},
    {"id": "billing", "name": "Billing", "categories": ["billing"]},
    {"id": "trust", "name": "Trust", "categories": ["trust_privacy"]},
]


def only_case(out: Outcome) -> uuid.UUID:
    (case_id,) = out.cases
    return case_id


def case_of(router: Engine, case_id: uuid.UUID) -> Case:
    case = router.case(case_id)
    assert case is not None
    return case


def lane(sla_text: str = SLA_YAML) -> Engine:
    agents = (
        agent("ann", skills={"delay": 4, "product_fault": 4}),
        agent("bill", team="billing", skills={"billing": 4}),
        agent("sup", tier="supervisor", team="trust", skills={"trust_privacy": 1}),
    )
    settings = EngineSettings(offer_timeout=timedelta(seconds=30))
    return Engine(roster(*agents, teams=TEAMS), sla_config(sla_text), settings)


def test_a_held_team_offers_an_unsure_case_only_once_reviewed() -> None:
    router = lane()
    held = only_case(router.apply(feedback(category="delay", unsure="product_fault"), T0))
    case = case_of(router, held)
    assert case.state == CaseState.QUEUED
    assert case.review is not None
    assert (case.review.status, case.review.hold) == ("pending", True)
    assert held not in router.queues["care"], "not offered to anyone who frees up"
    assert SlaMetricName.REVIEW in {d.metric for d in case.deadlines}
    # A sure case of the same team is offered at once.
    sure = only_case(router.apply(feedback(category="delay"), T0))
    assert case_of(router, sure).offer.agent_id == "ann"  # type: ignore[union-attr]

    out = router.apply(command("sup", Action.RELABEL, held, labels=Labels()), T0)
    assert out.result is not None
    assert out.result.status == Status.OK
    assert out.corrections == [], "a confirmation corrects nothing"
    case = case_of(router, held)
    assert case.review is not None
    assert (case.review.status, case.review.reviewed_by) == ("done", "sup")
    assert case.offer is not None, "offered once reviewed"
    assert case.offer.agent_id == "ann"
    review = next(d for d in case.deadlines if d.metric == SlaMetricName.REVIEW)
    assert review.met is True


def test_a_late_review_only_notifies() -> None:
    router = lane(SLA_YAML + "review: 4m\n")
    held = only_case(router.apply(feedback(category="delay", unsure="billing"), T0))
    late = T0 + timedelta(minutes=4, seconds=30)
    out = router.apply(Tick(at=late), late)
    breaches = [e for e in out.events if e.type == "sla_breached" and e.case_id == held]
    assert [e.detail["metric"] for e in breaches] == ["review"]
    assert breaches[0].detail["actions"] == "notify"
    case = case_of(router, held)
    assert case.escalations == 0
    assert case.state == CaseState.QUEUED


def test_a_routed_team_offers_at_once_and_reviews_in_parallel() -> None:
    router = lane()
    case_id = only_case(router.apply(feedback(category="billing", unsure="delay"), T0))
    case = case_of(router, case_id)
    assert case.review is not None
    assert (case.review.status, case.review.hold) == ("pending", False)
    assert case.offer is not None
    assert case.offer.agent_id == "bill"


def test_relabelling_moves_the_case_to_the_new_team_and_rederives_what_follows() -> None:
    router = lane()
    case_id = only_case(
        router.apply(feedback(category="billing", unsure="delay", amounts=(40.0,)), T0)
    )
    router.apply(command("bill", Action.ACCEPT, case_id), T0)
    before = case_of(router, case_id).model_copy(deep=True)
    assert before.remedy is not None
    assert before.remedy.kind == RemedyKind.REFUND

    out = router.apply(
        command("sup", Action.RELABEL, case_id, labels=Labels(category="delay", difficult="angry")),
        T0,
    )
    case = case_of(router, case_id)
    assert case.team == "care"
    assert case.category == "delay"
    assert case.hostile
    assert case.guidance != before.guidance
    assert case.remedy != before.remedy
    assert case.priority_components != before.priority_components
    assert case.offer is not None, "routed again in its new team"
    assert case.offer.agent_id == "ann"
    assert case.assignee is None
    assert "bill" not in {a for a in router.agents["bill"].holding}
    assert router.agents["bill"].holding == {}
    relabelled = next(e for e in out.events if e.type == "relabelled")
    assert relabelled.detail["team_from"] == "billing"
    assert relabelled.detail["reviewed"] == "true"


def test_a_correction_can_lower_the_priority() -> None:
    router = lane()
    case_id = only_case(
        router.apply(feedback(category="trust_privacy", unsure="delay", sentiment_score=-0.9), T0)
    )
    high = case_of(router, case_id).priority
    router.apply(command("sup", Action.RELABEL, case_id, labels=Labels(category="delay")), T0)
    low = case_of(router, case_id).priority
    assert list(Priority).index(low) > list(Priority).index(high)


def test_a_relabel_with_nothing_to_review_needs_a_label() -> None:
    router = lane()
    case_id = only_case(router.apply(feedback(category="delay"), T0))
    out = router.apply(command("sup", Action.RELABEL, case_id, labels=Labels()), T0)
    assert out.result is not None
    assert out.result.status == Status.INVALID


def test_a_new_unsure_message_puts_a_reviewed_case_back_in_the_lane() -> None:
    router = lane()
    first = feedback(category="billing", unsure="delay", customer="c-9", conversation_id="x")
    case_id = only_case(router.apply(first, T0))
    router.apply(command("sup", Action.RELABEL, case_id, labels=Labels()), T0)
    assert case_of(router, case_id).review.status == "done"  # type: ignore[union-attr]
    again = feedback(category="billing", unsure="delay", customer="c-9", conversation_id="x")
    later = T0 + timedelta(minutes=1)
    router.apply(again.model_copy(update={"at": later}), later)
    review = case_of(router, case_id).review
    assert review is not None
    assert (review.status, review.since, review.hold) == ("pending", later, False)
