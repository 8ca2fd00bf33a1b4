"""The supervisor's floor summary, from cases worked through the real state machine."""

from __future__ import annotations

from datetime import timedelta

from services.common.cases import CaseState
from services.router.commands import Action, Tick
from services.router.floor import floor_view
from tests.router.factories import T0, agent, command, engine, feedback
from tests.router.test_engine import only_case


def test_floor_counts_attainment_breaches_and_first_contact() -> None:
    router = engine(
        agent("front", skills={"delay": 5}, channels={"email": 5}),
        agent("senior", tier="senior", skills={"delay": 3}),
        agent("boss", tier="supervisor", presence="away"),
    )
    quick = only_case(router.apply(feedback(customer="c1"), T0))
    router.apply(command("front", Action.ACCEPT, quick), T0)
    router.apply(command("front", Action.RESPOND, quick, chars=100), T0 + timedelta(minutes=2))
    router.apply(command("front", Action.RESOLVE, quick), T0 + timedelta(minutes=3))
    router.apply(command("boss", Action.CSAT, quick, score=4), T0 + timedelta(minutes=4))

    slow = only_case(router.apply(feedback(customer="c2"), T0 + timedelta(minutes=4)))
    router.apply(command("front", Action.ACCEPT, slow), T0 + timedelta(minutes=4))
    at = T0 + timedelta(minutes=15)
    router.apply(Tick(at=at), at)  # warning, then breach and escalation of first response

    view = floor_view((r.case for r in router.records.values()), at)
    assert view.cases[CaseState.RESOLVED] == 1
    assert sum(view.cases.values()) == 2
    first = next(a for a in view.attainment if a.metric == "first_response")
    assert (first.completed, first.met, first.share) == (2, 1, 0.5)
    resolution = next(a for a in view.attainment if a.metric == "resolution")
    assert (resolution.completed, resolution.met, resolution.share) == (1, 1, 1.0)
    assert view.breaches == 1
    assert view.warnings >= 1
    assert view.escalations == 1
    assert view.first_contact_resolution == 1.0
    assert view.csat_average == 4.0
    (breach,) = view.recent_breaches
    assert breach.case_id == slow
    assert breach.metric == "first_response"
    assert breach.at == T0 + timedelta(minutes=14)


def test_an_empty_floor_has_no_shares() -> None:
    view = floor_view([], T0)
    assert view.breaches == 0
    assert all(a.share is None for a in view.attainment)
    assert view.first_contact_resolution is None
    assert view.csat_average is None


def test_a_follow_up_coming_due_is_not_a_breach() -> None:
    router = engine(agent("front", skills={"delay": 5}))
    case_id = only_case(router.apply(feedback(customer="c1"), T0))
    router.apply(command("front", Action.ACCEPT, case_id), T0)
    router.apply(command("front", Action.RESOLVE, case_id), T0 + timedelta(minutes=1))
    later = T0 + timedelta(days=2)
    router.apply(Tick(at=later), later)
    view = floor_view((r.case for r in router.records.values()), later)
    assert view.follow_ups_due == 1
    assert view.breaches == 0
    assert view.recent_breaches == []
    assert "follow_up" not in {a.metric for a in view.attainment}
