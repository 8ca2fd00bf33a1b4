"""Agents who walked away: offers lapsing in a row, or a console gone, set them away."""

from __future__ import annotations

import uuid
from datetime import timedelta

from services.common.cases import AwayReason, CaseState, Presence
from services.router.commands import Action, Status, Tick
from services.router.engine import Engine, Outcome
from services.router.floor import floor_view
from tests.router.factories import T0, agent, command, engine, feedback

LAPSE = timedelta(seconds=31)  # past the tests' 30 s offer timeout


def only_case(out: Outcome) -> uuid.UUID:
    (case_id,) = out.cases
    return case_id


def tick(router: Engine, n: int) -> Outcome:
    at = T0 + LAPSE * n
    return router.apply(Tick(at=at), at)


def test_two_lapsed_offers_in_a_row_set_an_available_agent_away() -> None:
    router = engine(agent("a", skills={"delay": 5}), agent("b", skills={"delay": 2}))
    first = only_case(router.apply(feedback(), T0))
    assert router.case(first).offer.agent_id == "a"  # type: ignore[union-attr]
    out = tick(router, 1)
    assert out.notices == []
    assert router.agents["a"].lapsed_offers == 1
    assert router.agents["a"].presence == Presence.AVAILABLE

    second = only_case(router.apply(feedback(at=T0 + LAPSE), T0 + LAPSE))
    assert router.case(second).offer.agent_id == "a"  # type: ignore[union-attr]
    out = tick(router, 2)
    (notice,) = out.notices
    assert (notice.agent_id, notice.reason, notice.lapsed_offers) == ("a", "offers_lapsed", 2)
    assert notice.team == "care"
    a = router.agents["a"]
    assert (a.presence, a.away_reason) == (Presence.AWAY, AwayReason.OFFERS_LAPSED)
    assert router.agent_record("a").away_reason == AwayReason.OFFERS_LAPSED  # type: ignore[union-attr]
    assert "a" in out.agents
    # The lapsed case went on to the next agent, and nothing more is offered to the absent one.
    assert router.case(second).offer.agent_id == "b"  # type: ignore[union-attr]
    third = only_case(router.apply(feedback(at=T0 + LAPSE * 2), T0 + LAPSE * 2))
    assert router.case(third).offer.agent_id == "b"  # type: ignore[union-attr]
    assert router.case(first).state == CaseState.QUEUED, "lapsed with both agents"  # type: ignore[union-attr]
    floor = floor_view([], T0 + LAPSE * 2, router.agents.values())
    assert [(s.agent_id, s.reason, s.lapsed_offers) for s in floor.set_away] == [
        ("a", "offers_lapsed", 2)
    ]

    # Coming back clears the mark, and the next case is offered to them again.
    router.apply(command("a", Action.PRESENCE, presence=Presence.AVAILABLE), T0 + LAPSE * 2)
    assert router.agents["a"].away_reason is None
    assert router.agents["a"].lapsed_offers == 0
    fourth = only_case(router.apply(feedback(at=T0 + LAPSE * 2), T0 + LAPSE * 2))
    assert router.case(fourth).offer.agent_id == "a"  # type: ignore[union-attr]
    assert floor_view([], T0, router.agents.values()).set_away == []


def test_an_answer_between_lapses_starts_the_count_again() -> None:
    router = engine(agent("a", skills={"delay": 5}))
    only_case(router.apply(feedback(), T0))
    tick(router, 1)
    assert router.agents["a"].lapsed_offers == 1
    second = only_case(router.apply(feedback(at=T0 + LAPSE), T0 + LAPSE))
    router.apply(command("a", Action.DECLINE, second), T0 + LAPSE)
    assert router.agents["a"].lapsed_offers == 0
    third = only_case(router.apply(feedback(at=T0 + LAPSE), T0 + LAPSE))
    assert router.case(third).offer.agent_id == "a"  # type: ignore[union-attr]
    out = tick(router, 2)
    assert out.notices == []
    assert router.agents["a"].presence == Presence.AVAILABLE


def test_lapses_before_away_zero_never_sets_anyone_away() -> None:
    router = engine(agent("a", skills={"delay": 5}), lapses_before_away=0)
    for n in range(1, 6):
        only_case(router.apply(feedback(at=T0 + LAPSE * (n - 1)), T0 + LAPSE * (n - 1)))
        assert tick(router, n).notices == []
    assert router.agents["a"].presence == Presence.AVAILABLE
    assert router.agents["a"].lapsed_offers == 5


def test_a_lost_console_sets_an_available_agent_away_once() -> None:
    router = engine(agent("a", skills={"delay": 5}), agent("b", skills={"delay": 2}))
    case_id = only_case(router.apply(feedback(), T0))
    out = router.apply(command("a", Action.DISCONNECTED), T0)
    assert out.result is not None
    assert out.result.status == Status.OK
    (notice,) = out.notices
    assert (notice.agent_id, notice.reason) == ("a", "disconnected")
    assert router.case(case_id).offer.agent_id == "b", "the offer went back and on"  # type: ignore[union-attr]
    # Already away (or busy, offline): nothing more happens.
    assert router.apply(command("a", Action.DISCONNECTED), T0).notices == []


def test_the_marks_survive_a_restart() -> None:
    router = engine(agent("a", skills={"delay": 5}), agent("b", skills={"delay": 2}))
    only_case(router.apply(feedback(), T0))
    tick(router, 1)
    router.apply(command("b", Action.DISCONNECTED), T0 + LAPSE)
    agents = [router.agent_record(i) for i in ("a", "b")]
    records = [router.record(c) for c in router.kept()]
    restarted = engine(agent("a", skills={"delay": 5}), agent("b", skills={"delay": 2}))
    restarted.reset(records=records, agents=agents)  # type: ignore[arg-type]
    assert restarted.agents["a"].lapsed_offers == 1
    assert restarted.agents["b"].away_reason == AwayReason.DISCONNECTED
