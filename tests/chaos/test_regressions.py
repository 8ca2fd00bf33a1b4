"""What the chaos run found in the router's engine, pinned without Kafka: an agent's reply that
reaches the router after a deadline but before the clock's tick used to stop the clock with the
deadline never announced (the run saw it after each restart, when the first commands raced the
first tick, and in steady running within a tick interval of a deadline)."""

from __future__ import annotations

from datetime import timedelta

from services.router.commands import Action, Tick
from services.router.engine import Outcome
from tests.router.factories import T0, agent, command, engine, feedback


def _types(out: Outcome) -> list[str]:
    return [event.type.value for event in out.events]


def test_a_reply_after_the_deadline_before_the_tick_fires_the_deadline_once() -> None:
    router = engine(agent("amy"), agent("sue", tier="senior"))
    out = router.apply(feedback(), T0)
    (case_id,) = {event.case_id for event in out.events}
    router.apply(command("amy", Action.ACCEPT, case_id), T0)
    # First response: warning at 5 min, breach at 10 min. No tick came; amy replies at 11 min.
    late = T0 + timedelta(minutes=11)
    out = router.apply(command("amy", Action.RESPOND, case_id, at=late), late)
    assert _types(out) == ["sla_warning", "sla_breached", "responded"]
    for fired in out.events[:2]:
        assert fired.detail["metric"] == "first_response"
        assert fired.detail["late"] is True
        assert fired.detail["actions"] == ""
    case = router.case(case_id)
    assert case is not None
    assert case.assignee == "amy", "a late deadline takes no action: the reply is done"
    assert case.escalations == 0
    clock = next(d for d in case.deadlines if d.metric.value == "first_response")
    assert clock.warned
    assert clock.breached
    assert clock.met is False
    # The tick that comes afterwards fires nothing again.
    tick = late + timedelta(seconds=1)
    assert "sla_breached" not in _types(router.apply(Tick(at=tick), tick))


def test_a_reply_in_time_fires_nothing() -> None:
    router = engine(agent("amy"))
    out = router.apply(feedback(), T0)
    (case_id,) = {event.case_id for event in out.events}
    router.apply(command("amy", Action.ACCEPT, case_id), T0)
    soon = T0 + timedelta(minutes=4)
    out = router.apply(command("amy", Action.RESPOND, case_id, at=soon), soon)
    assert _types(out) == ["responded"]
