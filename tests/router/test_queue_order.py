"""Team queues ordered by breach risk (``queue_order=risk``) against the old order by priority
score plus aging (``queue_order=score``), without Kafka."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from services.common.cases import Case, Deadline, Priority, SlaMetricName
from services.common.messages import Channel, CustomerTier
from services.router.commands import Action, ClassifiedIn, Tick
from services.router.engine import Engine, EngineSettings, Outcome
from services.router.routing import (
    NO_DEADLINE_S,
    RISK_ALLOWANCE_S,
    RISK_LEAD_SHARE,
    QueueOrder,
    risk_horizon,
)
from services.router.settings import RouterSettings
from tests.router.factories import T0, agent, command, feedback, roster, sla_config

# Chat answers within minutes, e-mail within hours; a breach is only reported (no escalation
# or re-offer), so a case stays in its queue part and only its order is under test.
SLA = """
warning_share: 0.9
on_warning: [notify]
on_breach: [notify]
calendars:
  always: {timezone: UTC, always_open: true}
targets:
  chat:
    P1: {first_response: 1m, next_response: 1m, resolution: 30m, follow_up: 1d}
    "*": {first_response: 5m, next_response: 5m, resolution: 30m, follow_up: 1d}
  "*":
    P1: {first_response: 1h, next_response: 1h, resolution: 8h, follow_up: 1d}
    "*": {first_response: 8h, next_response: 8h, resolution: 3d, follow_up: 3d}
"""


def router(order: QueueOrder) -> Engine:
    """A floor of one agent, away: every case waits in the queue."""
    return Engine(
        roster(agent("a", presence="away", channels={"email": 2, "chat": 2})),
        sla_config(SLA),
        EngineSettings(queue_order=order),
    )


def created(out: Outcome) -> uuid.UUID:
    return out.events[0].case_id


def case(engine: Engine, case_id: uuid.UUID) -> Case:
    found = engine.case(case_id)
    assert found is not None
    return found


def waiting(engine: Engine) -> list[uuid.UUID]:
    return list(engine.queues["care"])


def urgent_email(at: datetime) -> ClassifiedIn:
    """A P1 by score: a VIP, very negative, angry about a bill."""
    return feedback(
        channel=Channel.EMAIL,
        category="billing",
        sentiment_score=-1.0,
        tier=CustomerTier.VIP,
        difficult="angry",
        at=at,
    )


def mild_chat(at: datetime) -> ClassifiedIn:
    """A P3/P4 chat: mildly negative, a standard customer."""
    return feedback(channel=Channel.CHAT, category="delay", sentiment_score=-0.3, at=at)


def deadline(metric: SlaMetricName, due: datetime, target_s: float, **flags: bool) -> Deadline:
    return Deadline(metric=metric, target_seconds=target_s, due_at=due, **flags)


def test_the_horizon_is_the_earliest_deadline_that_can_still_be_met() -> None:
    first = deadline(SlaMetricName.FIRST_RESPONSE, T0 + timedelta(minutes=5), 300)
    resolution = deadline(SlaMetricName.RESOLUTION, T0 + timedelta(hours=4), 4 * 3600)
    lead = RISK_LEAD_SHARE[SlaMetricName.RESOLUTION] * 4 * 3600
    assert risk_horizon([first, resolution], T0) == (T0 + timedelta(minutes=5)).timestamp()
    # Once the first response is late, only the resolution (less its handling lead) counts.
    late = first.model_copy(update={"breached": True})
    assert risk_horizon([late, resolution], T0) == (T0 + timedelta(hours=4)).timestamp() - lead
    # Everything late: due again one target after the last breach (bounded, not forgotten).
    gone = resolution.model_copy(update={"breached": True})
    assert risk_horizon([late, gone], T0) == (T0 + timedelta(hours=8)).timestamp()
    # Paused and stopped clocks do not count; no clock at all: a fixed horizon.
    paused = resolution.model_copy(update={"paused": True})
    stopped = first.model_copy(update={"stopped_at": T0})
    assert risk_horizon([paused, stopped], T0) == T0.timestamp() + NO_DEADLINE_S


def test_risk_takes_the_chat_about_to_breach_before_a_higher_scored_email() -> None:
    for order, expected in ((QueueOrder.RISK, "chat"), (QueueOrder.SCORE, "email")):
        engine = router(order)
        email = created(engine.apply(urgent_email(T0), T0))
        chat = created(engine.apply(mild_chat(T0 + timedelta(minutes=1)), T0))
        assert case(engine, email).priority == Priority.P1
        assert case(engine, chat).priority in (Priority.P3, Priority.P4)
        first = waiting(engine)[0]
        assert first == (chat if expected == "chat" else email), order


def test_priority_breaks_ties_between_cases_due_together() -> None:
    engine = Engine(
        roster(agent("a", presence="away")),
        sla_config(),  # one target for every channel and priority
        EngineSettings(queue_order=QueueOrder.RISK),
    )
    low = created(engine.apply(feedback(sentiment_score=-0.2, at=T0), T0))
    high = created(engine.apply(feedback(sentiment_score=-1.0, tier=CustomerTier.VIP, at=T0), T0))
    assert list(Priority).index(case(engine, high).priority) < list(Priority).index(
        case(engine, low).priority
    )
    assert waiting(engine) == [high, low]


def test_a_late_first_response_gives_way_to_cases_still_on_time() -> None:
    first: dict[QueueOrder, str] = {}
    for order in QueueOrder:
        engine = router(order)
        late = created(engine.apply(mild_chat(T0), T0))
        engine.apply(Tick(at=T0 + timedelta(minutes=6)), T0 + timedelta(minutes=6))
        deadlines = {d.metric: d for d in case(engine, late).deadlines}
        assert deadlines[SlaMetricName.FIRST_RESPONSE].breached
        on_time = created(
            engine.apply(mild_chat(T0 + timedelta(minutes=6)), T0 + timedelta(minutes=6))
        )
        names = {late: "late", on_time: "on time"}
        first[order] = names[waiting(engine)[0]]
    # The new order answers first the customer who can still be answered in time; the old one
    # keeps the older case first (it has aged).
    assert first == {QueueOrder.RISK: "on time", QueueOrder.SCORE: "late"}


def test_no_case_waits_behind_newer_ones_beyond_a_bound() -> None:
    """A low-priority chat among a stream of P1 chats: P1s overtake it only while they come
    due before it; every P1 that arrives later than its horizon plus the largest allowance
    waits behind it, and that horizon is within two targets of its arrival."""
    engine = router(QueueOrder.RISK)
    low = created(engine.apply(mild_chat(T0), T0))
    urgent = []
    for minute in range(1, 30):
        at = T0 + timedelta(minutes=minute)
        engine.apply(Tick(at=at), at)
        vip = feedback(
            channel=Channel.CHAT,
            category="billing",
            sentiment_score=-1.0,
            tier=CustomerTier.VIP,
            difficult="angry",
            at=at,
        )
        urgent.append((at, created(engine.apply(vip, at))))
    assert all(case(engine, c).priority == Priority.P1 for _, c in urgent)
    order = waiting(engine)
    ahead = {case_id for case_id in order[: order.index(low)]}
    horizon = risk_horizon(case(engine, low).deadlines, T0)
    allowance = max(RISK_ALLOWANCE_S.values())
    for at, case_id in urgent:
        if at.timestamp() > horizon + allowance:
            assert case_id not in ahead
    assert ahead, "P1 chats arriving while the low case could wait do go first"
    assert any(case_id not in ahead for _, case_id in urgent), "and later ones do not"
    assert horizon <= (T0 + 2 * timedelta(minutes=30)).timestamp()


def test_the_score_order_lets_a_stream_of_p1_overtake_for_hours() -> None:
    engine = router(QueueOrder.SCORE)
    low = created(engine.apply(mild_chat(T0), T0))
    for minute in range(1, 30):
        at = T0 + timedelta(minutes=minute)
        vip = feedback(
            channel=Channel.CHAT,
            sentiment_score=-1.0,
            tier=CustomerTier.VIP,
            difficult="angry",
            category="billing",
            at=at,
        )
        engine.apply(vip, at)
    assert waiting(engine)[-1] == low


def test_a_priority_raise_files_the_case_again() -> None:
    engine = Engine(
        roster(agent("a", presence="away", channels={"email": 1, "chat": 1})),
        sla_config(SLA.replace("on_warning: [notify]", "on_warning: [notify, raise_priority]")),
        EngineSettings(queue_order=QueueOrder.RISK),
    )
    first = created(engine.apply(mild_chat(T0), T0))
    second = created(engine.apply(mild_chat(T0), T0))
    assert waiting(engine) == sorted([first, second], key=str)
    # At the warning (90 % of 5 minutes) both are raised one step and keep their order; a
    # raise is reflected in the queue as in the case.
    at = T0 + timedelta(minutes=4, seconds=40)
    engine.apply(Tick(at=at), at)
    raised = {case(engine, c).priority for c in (first, second)}
    assert len(raised) == 1
    assert raised != {Priority.P4}
    key = engine.queues["care"].key(case(engine, first))
    assert key[1] == list(Priority).index(case(engine, first).priority)


def test_an_agent_coming_back_takes_the_case_nearest_to_breaching_first() -> None:
    offered: dict[QueueOrder, str] = {}
    for order in QueueOrder:
        engine = router(order)
        email = created(engine.apply(urgent_email(T0), T0))
        chat = created(engine.apply(mild_chat(T0 + timedelta(seconds=30)), T0))
        back = T0 + timedelta(minutes=1)
        out = engine.apply(command("a", Action.PRESENCE, presence="available", at=back), back)
        offers = [e.case_id for e in out.events if e.type.value == "offered"]
        assert sorted(offers, key=str) == sorted([email, chat], key=str)  # room for both
        offered[order] = "chat" if offers[0] == chat else "email"
    assert offered == {QueueOrder.RISK: "chat", QueueOrder.SCORE: "email"}


@pytest.mark.parametrize(("value", "expected"), [(None, "risk"), ("score", "score")])
def test_the_setting_picks_the_order(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: str
) -> None:
    if value is None:
        monkeypatch.delenv("TRIAGE_ROUTER_QUEUE_ORDER", raising=False)
    else:
        monkeypatch.setenv("TRIAGE_ROUTER_QUEUE_ORDER", value)
    settings = RouterSettings().engine_settings()
    assert settings.queue_order == QueueOrder(expected)
    engine = Engine(roster(agent("a")), sla_config(), settings)
    assert engine.queues["care"].order == QueueOrder(expected)
