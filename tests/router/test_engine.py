"""The router's state machine, without Kafka: cases, routing, offers, escalation, clocks."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from pydantic import ValidationError

from services.common.cases import AgentTier, CaseState, Presence, Priority
from services.common.messages import Channel, CustomerTier
from services.router.commands import Action, IncidentRef, Labels, Status, Tick
from services.router.engine import Engine, Outcome
from tests.router.factories import T0, agent, command, engine, feedback


def types(out: Outcome) -> list[str]:
    return [event.type.value for event in out.events]


def only_case(out: Outcome) -> uuid.UUID:
    (case_id,) = {event.case_id for event in out.events}
    return case_id


def test_a_message_creates_a_case_offered_to_the_best_agent() -> None:
    router = engine(
        agent("low", skills={"delay": 2}),
        agent("high", skills={"delay": 5}),
    )
    out = router.apply(feedback(category="delay"), T0)
    assert types(out) == ["created", "offered"]
    case = out.events[-1].case
    assert case.state == CaseState.OFFERED
    assert case.offer is not None
    assert case.offer.agent_id == "high"
    decision = case.routing[-1]
    assert decision.agent_id == "high"
    assert decision.eligible == 2
    assert "best proficiency" in decision.rule
    assert case.guidance
    assert case.deadlines


def test_least_loaded_then_longest_idle_break_ties() -> None:
    router = engine(agent("a"), agent("b"))
    first = router.apply(feedback(), T0).events[-1].case.offer
    second = router.apply(feedback(), T0).events[-1].case.offer
    assert first is not None
    assert second is not None
    assert {first.agent_id, second.agent_id} == {"a", "b"}


def test_full_lifecycle_accept_respond_wait_resolve() -> None:
    router = engine(agent("a"))
    case_id = only_case(router.apply(feedback(), T0))
    out = router.apply(command("a", Action.ACCEPT, case_id), T0 + timedelta(seconds=5))
    assert out.result is not None
    assert out.result.status == Status.OK
    assert types(out) == ["assigned"]
    out = router.apply(command("a", Action.RESPOND, case_id, chars=120), T0 + timedelta(minutes=2))
    assert types(out) == ["responded"]
    case = out.events[-1].case
    first = next(d for d in case.deadlines if d.metric == "first_response")
    assert first.met is True
    assert first.stopped_at is not None
    out = router.apply(command("a", Action.WAIT, case_id), T0 + timedelta(minutes=3))
    resolution = next(d for d in out.events[-1].case.deadlines if d.metric == "resolution")
    assert resolution.paused
    assert resolution.due_at is None
    out = router.apply(command("a", Action.RESOLVE, case_id), T0 + timedelta(hours=3))
    case = out.events[-1].case
    assert case.state == CaseState.RESOLVED
    assert case.first_contact_resolution
    resolution = next(d for d in case.deadlines if d.metric == "resolution")
    # Only 3 minutes ran before the pause: the hours on hold do not count.
    assert resolution.met is True
    assert case.follow_up_due_at == T0 + timedelta(hours=3, days=1)
    assert router.agents["a"].load.get(Channel.EMAIL, 0) == 0


def test_offer_timeout_goes_to_the_next_agent() -> None:
    router = engine(agent("a", skills={"delay": 5}), agent("b", skills={"delay": 2}))
    case_id = only_case(router.apply(feedback(), T0))
    assert router.case(case_id).offer.agent_id == "a"  # type: ignore[union-attr]
    assert router.next_due() == T0 + timedelta(seconds=30)
    out = router.apply(Tick(at=T0 + timedelta(seconds=31)), T0 + timedelta(seconds=31))
    assert types(out) == ["offer_timed_out", "offered"]
    assert out.events[-1].case.offer.agent_id == "b"  # type: ignore[union-attr]
    assert router.agents["a"].holding == {}


def test_decline_goes_to_the_next_agent_and_never_back() -> None:
    router = engine(agent("a", skills={"delay": 5}), agent("b", skills={"delay": 2}))
    case_id = only_case(router.apply(feedback(), T0))
    out = router.apply(command("a", Action.DECLINE, case_id, reason="off topic"), T0)
    assert types(out) == ["offer_declined", "offered"]
    out = router.apply(command("b", Action.DECLINE, case_id), T0)
    assert types(out) == ["offer_declined", "queued"]
    assert router.case(case_id).state == CaseState.QUEUED  # type: ignore[union-attr]


def test_no_eligible_agent_queues_and_capacity_freed_takes_the_highest() -> None:
    router = engine(agent("a", channels={"email": 1}))
    busy = only_case(router.apply(feedback(), T0))
    router.apply(command("a", Action.ACCEPT, busy), T0)
    low = only_case(router.apply(feedback(sentiment_score=-0.1), T0 + timedelta(seconds=1)))
    high = only_case(
        router.apply(
            feedback(sentiment_score=-1.0, tier=CustomerTier.VIP), T0 + timedelta(seconds=2)
        )
    )
    assert router.case(low).state == CaseState.QUEUED  # type: ignore[union-attr]
    assert router.case(low).routing[-1].excluded == {"unavailable_full_or_unskilled": 1}  # type: ignore[union-attr]
    out = router.apply(command("a", Action.RESOLVE, busy), T0 + timedelta(minutes=1))
    assert types(out)[-1] == "offered"
    assert out.events[-1].case_id == high


def test_aging_lets_an_old_case_overtake_a_newer_urgent_one() -> None:
    router = engine(agent("a", channels={"email": 1}))
    busy = only_case(router.apply(feedback(), T0))
    router.apply(command("a", Action.ACCEPT, busy), T0)
    old = only_case(router.apply(feedback(sentiment_score=-0.2), T0))
    # 2 hours later a more urgent case arrives; the old one has aged 60 points (0.5/min).
    newer = only_case(router.apply(feedback(sentiment_score=-0.9), T0 + timedelta(hours=2)))
    assert newer != old
    out = router.apply(command("a", Action.RESOLVE, busy), T0 + timedelta(hours=2))
    assert out.events[-1].case_id == old


def test_hostile_cases_go_only_to_marked_agents_and_weigh_more() -> None:
    router = engine(
        agent("calm", hostile=False, skills={"delay": 5}),
        agent("tough", hostile=True, skills={"delay": 1}),
    )
    out = router.apply(feedback(difficult="abusive"), T0)
    case = out.events[-1].case
    assert case.hostile
    assert case.offer.agent_id == "tough"  # type: ignore[union-attr]
    assert [c.agent_id for c in case.routing[-1].candidates] == ["tough"]
    assert router.agents["tough"].used(Channel.EMAIL) == 2.0


def test_no_more_than_the_configured_hostile_cases_in_a_row() -> None:
    router = engine(
        agent("a", channels={"email": 10}, skills={"delay": 5}),
        agent("b", channels={"email": 10}, skills={"delay": 1}),
        max_hostile_streak=2,
        hostile_weight=1.0,
    )
    taken_by_a = 0
    for i in range(3):
        case_id = only_case(router.apply(feedback(difficult="angry"), T0 + timedelta(seconds=i)))
        case = router.case(case_id)
        assert case is not None
        assert case.offer is not None
        holder = case.offer.agent_id
        router.apply(command(holder, Action.ACCEPT, case_id), T0 + timedelta(seconds=i))
        taken_by_a += holder == "a"
    assert router.agents["a"].hostile_streak <= 2
    assert taken_by_a == 2


def test_authority_decides_and_escalates_when_frontline_cannot_grant() -> None:
    router = engine(
        agent("front", authority={"refund": 50}, skills={"billing": 5}),
        agent("senior", tier="senior", authority={"refund": 1000}, skills={"billing": 2}),
    )
    out = router.apply(feedback(category="billing", amounts=(30.0,)), T0)
    assert out.events[-1].case.offer.agent_id == "front"  # type: ignore[union-attr]
    out = router.apply(feedback(category="billing", amounts=(400.0,)), T0)
    assert types(out) == ["created", "escalated", "offered"]
    case = out.events[-1].case
    assert case.required_tier == AgentTier.SENIOR
    assert case.offer.agent_id == "senior"  # type: ignore[union-attr]
    assert out.events[1].detail["reason"] == "authority"


def test_language_is_required_when_the_team_speaks_it() -> None:
    router = engine(agent("en", skills={"delay": 5}), agent("fr", languages=["fr", "en"]))
    out = router.apply(feedback(language="fr"), T0)
    assert out.events[-1].case.offer.agent_id == "fr"  # type: ignore[union-attr]
    out = router.apply(feedback(language="ja"), T0)
    case = out.events[-1].case
    assert case.offer is not None
    assert "no agent of the team speaks 'ja'" in case.routing[-1].rule


def test_away_returns_offers_offline_returns_all_work() -> None:
    router = engine(agent("a", skills={"delay": 5}), agent("b", skills={"delay": 1}))
    offered = only_case(router.apply(feedback(), T0))
    accepted = only_case(router.apply(feedback(), T0))
    holder = router.case(accepted).offer.agent_id  # type: ignore[union-attr]
    router.apply(command(holder, Action.ACCEPT, accepted), T0)
    first = router.case(offered).offer.agent_id  # type: ignore[union-attr]
    out = router.apply(command(first, Action.PRESENCE, presence=Presence.AWAY), T0)
    assert "returned" in types(out)
    assert router.case(offered).offer is None or router.case(offered).offer.agent_id != first  # type: ignore[union-attr]
    out = router.apply(command(holder, Action.PRESENCE, presence=Presence.OFFLINE), T0)
    assert router.case(accepted).assignee != holder  # type: ignore[union-attr]
    assert router.agents[holder].holding == {}


def test_breach_escalates_to_senior() -> None:
    router = engine(
        agent("front", skills={"delay": 5}),
        agent("senior", tier="senior", skills={"delay": 3}),
    )
    case_id = only_case(router.apply(feedback(), T0))
    router.apply(command("front", Action.ACCEPT, case_id), T0)
    out = router.apply(Tick(at=T0 + timedelta(minutes=5)), T0 + timedelta(minutes=5))
    assert types(out) == ["sla_warning"]
    assert out.events[0].detail["metric"] == "first_response"
    out = router.apply(Tick(at=T0 + timedelta(minutes=10)), T0 + timedelta(minutes=10))
    assert types(out)[:2] == ["sla_breached", "escalated"]
    case = router.case(case_id)
    assert case is not None
    assert case.required_tier == AgentTier.SENIOR
    assert case.offer is not None
    assert case.offer.agent_id == "senior"
    # The same deadline never fires twice.
    out = router.apply(Tick(at=T0 + timedelta(minutes=11)), T0 + timedelta(minutes=11))
    assert "sla_breached" not in types(out)


def test_reply_threads_into_the_case_and_reopens_after_resolution() -> None:
    router = engine(agent("a"))
    case_id = only_case(router.apply(feedback(message_id="<m1@x>", customer="c1"), T0))
    router.apply(command("a", Action.ACCEPT, case_id), T0)
    out = router.apply(feedback(in_reply_to="<m1@x>", customer="c1"), T0 + timedelta(minutes=1))
    assert types(out) == ["message_added"]
    assert len(router.case(case_id).messages) == 2  # type: ignore[union-attr]
    router.apply(command("a", Action.RESPOND, case_id), T0 + timedelta(minutes=2))
    router.apply(command("a", Action.RESOLVE, case_id), T0 + timedelta(minutes=3))
    out = router.apply(
        feedback(in_reply_to="<m1@x>", customer="c1"), T0 + timedelta(days=1, minutes=4)
    )
    assert types(out) == ["reopened", "offered"]
    case = router.case(case_id)
    assert case is not None
    assert case.reopened == 1
    assert case.offer.agent_id == "a"  # type: ignore[union-attr]
    assert not case.first_contact_resolution


def test_same_customer_within_window_joins_the_open_case() -> None:
    router = engine(agent("a"), thread_window=timedelta(hours=1))
    first = only_case(router.apply(feedback(customer="c9"), T0))
    second = router.apply(feedback(customer="c9"), T0 + timedelta(minutes=30))
    assert only_case(second) == first
    third = router.apply(feedback(customer="c9"), T0 + timedelta(hours=3))
    assert only_case(third) != first


def test_a_repeated_event_is_ignored() -> None:
    router = engine(agent("a"))
    message = feedback()
    router.apply(message, T0)
    out = router.apply(message, T0)
    assert out.events == []
    assert out.duplicate


def test_agents_act_only_on_their_own_cases() -> None:
    router = engine(agent("a", skills={"delay": 5}), agent("b", skills={"delay": 1}))
    case_id = only_case(router.apply(feedback(), T0))
    out = router.apply(command("b", Action.ACCEPT, case_id), T0)
    assert out.result is not None
    assert out.result.status == Status.FORBIDDEN
    out = router.apply(command("a", Action.RESOLVE, case_id), T0)
    assert out.result is not None
    assert out.result.status == Status.CONFLICT
    out = router.apply(command("a", Action.ACCEPT, uuid.uuid4()), T0)
    assert out.result is not None
    assert out.result.status == Status.NOT_FOUND
    out = router.apply(command("a", Action.REASSIGN, case_id, to_agent="b"), T0)
    assert out.result is not None
    assert out.result.status == Status.FORBIDDEN
    out = router.apply(command("ghost", Action.ACCEPT, case_id), T0)
    assert out.result is not None
    assert out.result.status == Status.FORBIDDEN


def test_supervisor_reassigns_and_relabels() -> None:
    router = engine(
        agent("a", skills={"delay": 5}),
        agent("b", skills={"delay": 1}),
        agent("sup", tier="supervisor", skills={"delay": 1}),
    )
    case_id = only_case(router.apply(feedback(), T0))
    router.apply(command("a", Action.ACCEPT, case_id), T0)
    out = router.apply(command("sup", Action.REASSIGN, case_id, to_agent="b"), T0)
    assert out.result is not None
    assert out.result.status == Status.OK
    assert router.case(case_id).assignee == "b"  # type: ignore[union-attr]
    assert router.agents["a"].holding == {}
    out = router.apply(
        command("sup", Action.RELABEL, case_id, labels=Labels(difficult="angry")),
        T0,
    )
    assert types(out) == ["relabelled"]
    assert router.case(case_id).hostile  # type: ignore[union-attr]
    (correction,) = out.corrections
    message = router.case(case_id).messages[0]  # type: ignore[union-attr]
    assert correction.case_id == case_id
    assert correction.event_id == message.event_id
    assert correction.text == message.text
    assert correction.label_difficult == "angry"
    assert correction.label_category is None, "only the labels the supervisor gave"
    assert correction.predicted_difficult == message.difficult.label
    assert correction.corrected_by == "sup"
    # A replay of the same change names the same correction; a later one a new one.
    again = router.apply(
        command("sup", Action.RELABEL, case_id, labels=Labels(category="billing")), T0
    )
    assert again.corrections[0].correction_id != correction.correction_id
    assert again.corrections[0].label_category == "billing"


def test_escalate_on_request_and_transfer_to_team() -> None:
    router = engine(
        agent("a", skills={"delay": 5}),
        agent("s", tier="senior", skills={"delay": 1}),
        agent("t", team="trust", skills={"delay": 2, "trust_privacy": 4}),
    )
    case_id = only_case(router.apply(feedback(), T0))
    router.apply(command("a", Action.ACCEPT, case_id), T0)
    out = router.apply(command("a", Action.ESCALATE, case_id, reason="needs approval"), T0)
    assert types(out)[:3] == ["escalated", "returned", "offered"]
    assert out.events[-1].case.offer.agent_id == "s"  # type: ignore[union-attr]
    router.apply(command("s", Action.ACCEPT, case_id), T0)
    out = router.apply(command("s", Action.TRANSFER, case_id, to_team="trust"), T0)
    case = router.case(case_id)
    assert case is not None
    assert case.team == "trust"
    assert case.transfers == 1
    assert case.state == CaseState.QUEUED


def test_csat_after_resolution() -> None:
    router = engine(agent("a"), agent("boss", tier="supervisor", presence="away"))
    case_id = only_case(router.apply(feedback(), T0))
    out = router.apply(command("boss", Action.CSAT, case_id, score=4), T0)
    assert out.result is not None
    assert out.result.status == Status.CONFLICT
    router.apply(command("a", Action.ACCEPT, case_id), T0)
    router.apply(command("a", Action.RESOLVE, case_id), T0)
    out = router.apply(command("boss", Action.CSAT, case_id, score=4), T0)
    assert types(out) == ["csat_recorded"]
    assert router.case(case_id).csat == 4  # type: ignore[union-attr]


def test_follow_up_fires_once_after_resolution() -> None:
    router = engine(agent("a"))
    case_id = only_case(router.apply(feedback(), T0))
    router.apply(command("a", Action.ACCEPT, case_id), T0)
    router.apply(command("a", Action.RESPOND, case_id), T0)
    router.apply(command("a", Action.RESOLVE, case_id), T0 + timedelta(minutes=1))
    due = T0 + timedelta(days=1, minutes=1)
    assert types(router.apply(Tick(at=due), due)) == ["follow_up_due"]
    assert types(router.apply(Tick(at=due), due + timedelta(hours=1))) == []


def test_priority_reflects_tier_public_reach_and_trust() -> None:
    router = engine(agent("a", skills={"trust_privacy": 3}, team="trust"))
    calm = router.apply(feedback(sentiment_score=-0.1), T0).events[0].case
    loud = (
        router.apply(
            feedback(
                channel=Channel.SOCIAL,
                public_reach=200_000,
                tier=CustomerTier.VIP,
                difficult="angry",
                sentiment_score=-0.95,
                category="trust_privacy",
            ),
            T0,
        )
        .events[0]
        .case
    )
    assert calm.priority == Priority.P4
    assert loud.priority == Priority.P1
    assert {c.name for c in loud.priority_components} >= {
        "sentiment",
        "tier",
        "public",
        "category",
        "difficult",
    }


def test_state_rebuilt_from_records_routes_the_same() -> None:
    router = engine(agent("a", skills={"delay": 5}, channels={"email": 1}), agent("b"))
    ids = [only_case(router.apply(feedback(), T0 + timedelta(seconds=i))) for i in range(4)]
    router.apply(command("a", Action.ACCEPT, ids[0]), T0)
    records = [r.model_copy(deep=True) for r in router.records.values()]
    agents = [r.model_copy(deep=True) for r in router.agent_records.values()]
    restored = Engine(router.roster, router.config, router.settings)
    restored.reset(records=records, agents=agents)
    for agent_id in ("a", "b"):
        assert restored.agents[agent_id].load == router.agents[agent_id].load
    assert len(restored.queues["care"]) == len(router.queues["care"])
    assert restored.next_due() == router.next_due()
    later = T0 + timedelta(minutes=1)
    assert types(restored.apply(command("a", Action.RESOLVE, ids[0]), later)) == types(
        router.apply(command("a", Action.RESOLVE, ids[0]), later)
    )


@pytest.mark.parametrize("presence", [Presence.AWAY, Presence.BUSY, Presence.OFFLINE])
def test_unavailable_agents_get_no_offers(presence: Presence) -> None:
    router = engine(agent("a", presence=presence.value))
    out = router.apply(feedback(), T0)
    assert types(out) == ["created", "queued"]
    out = router.apply(command("a", Action.PRESENCE, presence=Presence.AVAILABLE), T0)
    assert types(out) == ["offered"]


def test_a_case_knows_the_platform_that_posted_its_first_message() -> None:
    router = engine(agent("amy"))
    out = router.apply(feedback(customer="c-platform"), T0)
    assert out.events[0].case.platform == "test"


def test_supervisor_tags_the_cases_of_an_incident() -> None:
    router = engine(agent("a"), agent("sup", tier="supervisor"))
    burst = [feedback("The app will not let me log in.") for _ in range(3)]
    cases = [only_case(router.apply(message, T0)) for message in burst]
    # One is resolved and compressed before the tag: it is tagged all the same.
    router.apply(command("a", Action.ACCEPT, cases[0]), T0)
    router.apply(command("a", Action.RESOLVE, cases[0], note="reset"), T0)
    later = T0 + timedelta(days=2)
    for at in (later - timedelta(days=1), later):  # the follow-up fires, then it is settled
        router.apply(Tick(at=at), at)
    assert cases[0] in router.archive
    stranger = uuid.uuid4()
    event_ids = (*(m.feedback.event_id for m in burst), burst[1].feedback.event_id, stranger)
    tag = IncidentRef(reference="INC-42", note="login outage")

    def tag_them(actor: str, command_id: uuid.UUID | None = None) -> Outcome:
        cmd = command(actor, Action.TAG_INCIDENT, None, incident=tag, event_ids=event_ids)
        if command_id is not None:
            cmd = cmd.model_copy(update={"command_id": command_id})
        return router.apply(cmd, later)

    refused = tag_them("a")
    assert refused.result is not None
    assert refused.result.status == Status.FORBIDDEN
    assert refused.events == []

    out = tag_them("sup")
    assert out.result is not None
    assert out.result.status == Status.OK
    assert out.result.incident is not None
    assert out.result.incident.tagged == cases
    assert out.result.incident.missing == [stranger]
    assert types(out) == ["incident_tagged"] * 3
    for case_id in cases:
        case = router.case(case_id)
        assert case is not None
        assert case.incident is not None
        assert (case.incident.reference, case.incident.tagged_by) == ("INC-42", "sup")
    assert out.cases == set(cases)

    # A retry of the same command, or the same tag again, changes nothing.
    again = tag_them("sup", out.result.command_id)
    assert again.events == []
    assert again.result is not None
    assert again.result.incident is not None
    assert again.result.incident.unchanged == cases
    assert tag_them("sup").events == []


def test_an_incident_needs_a_reference_and_messages() -> None:
    with pytest.raises(ValidationError, match="incident"):
        command("sup", Action.TAG_INCIDENT, None, event_ids=(uuid.uuid4(),))
    with pytest.raises(ValidationError, match="event_ids"):
        command(
            "sup", Action.TAG_INCIDENT, None, incident=IncidentRef(reference="INC-1"), event_ids=()
        )
