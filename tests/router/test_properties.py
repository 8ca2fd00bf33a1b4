"""Properties of routing under any sequence of messages, commands and ticks."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.cases import OPEN_STATES, TIER_RANK, CaseState, Presence
from services.common.messages import Channel
from services.router.commands import Action
from services.router.engine import Engine
from services.router.guidance import covers
from tests.router.factories import T0, agent, command, engine, feedback

AGENTS = [
    agent("f1", authority={"refund": 50}, channels={"email": 2, "chat": 1}, hostile=False),
    agent("f2", authority={"refund": 100, "goodwill_credit": 20}, channels={"email": 1}),
    agent("s1", tier="senior", authority={"refund": 500, "goodwill_credit": 100}),
    agent("sup", tier="supervisor", authority={"refund": 5000, "goodwill_credit": 1000}),
]
IDS = ["f1", "f2", "s1", "sup"]

messages = st.builds(
    lambda cat, diff, amt, ch, cust: ("message", cat, diff, amt, ch, cust),
    st.sampled_from(["delay", "billing", "product_fault"]),
    st.sampled_from(["none", "angry", "abusive", "quiet"]),
    st.sampled_from([(), (20.0,), (80.0,), (400.0,), (3000.0,)]),
    st.sampled_from([Channel.EMAIL, Channel.CHAT]),
    st.sampled_from(["c1", "c2", "c3", None]),
)
actions = st.builds(
    lambda who, what, pick: ("command", who, what, pick),
    st.sampled_from(IDS),
    st.sampled_from(
        [
            Action.ACCEPT,
            Action.DECLINE,
            Action.RESPOND,
            Action.WAIT,
            Action.RESOLVE,
            Action.ESCALATE,
            Action.TRANSFER,
        ]
    ),
    st.integers(min_value=0, max_value=50),
)
presence = st.builds(
    lambda who, p: ("presence", who, p), st.sampled_from(IDS), st.sampled_from(list(Presence))
)
ticks = st.builds(lambda minutes: ("tick", minutes), st.integers(min_value=0, max_value=90))
steps = st.lists(st.one_of(messages, actions, presence, ticks), min_size=1, max_size=60)


def check_invariants(router: Engine) -> None:
    holders: dict[object, str] = {}
    for agent_id, state in router.agents.items():
        carried: dict[Channel, float] = {}
        for case_id, weight in state.holding.items():
            channel = router.records[case_id].case.channel
            carried[channel] = carried.get(channel, 0.0) + weight
        for channel, used in state.load.items():
            assert abs(used - carried.get(channel, 0.0)) < 1e-9, "load out of step with cases"
        for channel, capacity in state.profile.channels.items():
            assert state.used(channel) <= capacity + 1e-9, (agent_id, channel, state.load)
        assert state.hostile_streak <= router.rules.max_hostile_streak
        for case_id in state.holding:
            assert case_id not in holders, "a case is held by two agents"
            holders[case_id] = agent_id
    for case_id, record in router.records.items():
        case = record.case
        holder = case.offer.agent_id if case.offer else case.assignee
        if case.state in (CaseState.OFFERED, CaseState.ASSIGNED, CaseState.WAITING_ON_CUSTOMER):
            assert holder is not None
            assert holders.get(case_id) == holder
            profile = router.agents[holder].profile
            if profile.tier != "supervisor":  # supervisors decide beyond anyone's authority
                assert covers(profile.authority, case.remedy), "assigned above authority"
            assert TIER_RANK[profile.tier] >= TIER_RANK[case.required_tier]
        else:
            assert case_id not in holders
        if case.state == CaseState.QUEUED:
            assert case_id in router.queues[case.team]
        elif case.state in OPEN_STATES:
            assert case_id not in router.queues[case.team]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_no_agent_over_capacity_or_above_authority(plan: list[tuple[object, ...]]) -> None:
    router = engine(*AGENTS)
    now = T0
    for step in plan:
        now += timedelta(seconds=20)
        if step[0] == "message":
            _, category, difficult, amounts, channel, customer = step
            router.apply(
                feedback(
                    category=category,  # type: ignore[arg-type]
                    difficult=difficult,  # type: ignore[arg-type]
                    amounts=amounts,  # type: ignore[arg-type]
                    channel=channel,  # type: ignore[arg-type]
                    customer=customer,  # type: ignore[arg-type]
                    at=now,
                ),
                now,
            )
        elif step[0] == "command":
            _, who, what, pick = step
            cases = sorted(router.records, key=str)
            if not cases:
                continue  # a case command names its case: with none yet, there is none to send
            case_id = cases[pick % len(cases)]  # type: ignore[operator]
            extra = {"to_team": "trust"} if what == Action.TRANSFER else {}
            router.apply(command(who, what, case_id, at=now, **extra), now)  # type: ignore[arg-type]
        elif step[0] == "presence":
            _, who, status = step
            router.apply(command(who, Action.PRESENCE, presence=status, at=now), now)  # type: ignore[arg-type]
        else:
            now += timedelta(minutes=step[1])  # type: ignore[arg-type]
            from services.router.commands import Tick

            router.apply(Tick(at=now), now)
        check_invariants(router)
