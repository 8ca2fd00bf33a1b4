"""Hostile input and who may do what, on the state machine without Kafka: threading across
customers, the roster's authority over stored agents, supervisors' limits, and the size of
what a case event carries."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from services.common.cases import AgentTier, CaseState, Presence
from services.common.messages import Channel, ChatDetails, ChatRole, ChatTurn
from services.router.app import build_engine_factory, inbox_record
from services.router.commands import Action, ClassifiedIn, Status
from services.router.engine import AgentRecord, _thread_keys
from services.router.roster import AgentProfile, RosterError, hash_token
from services.router.settings import RouterSettings
from tests.router.factories import T0, agent, command, engine, feedback
from tests.router.test_engine import only_case, types

#: Kafka's default largest record (message.max.bytes / max.request.size).
RECORD_LIMIT = 1_000_000

# ------------------------------------------------------------------ item 5: threading


def test_a_strangers_reply_opens_its_own_case() -> None:
    router = engine(agent("a"), agent("b"))
    victim = only_case(
        router.apply(
            feedback(
                "Order 123 to 1 Main St has not arrived.",
                customer="victim@example.com",
                message_id="<victim-msg-1@example.com>",
            ),
            T0,
        )
    )
    out = router.apply(
        feedback(
            "Please send the refund to my new card instead.",
            customer="mallory@evil.example",
            in_reply_to="<victim-msg-1@example.com>",
        ),
        T0 + timedelta(minutes=1),
    )
    assert types(out)[0] == "created"
    stranger = only_case(out)
    assert stranger != victim
    assert router.case(stranger).customer_id == "mallory@evil.example"  # type: ignore[union-attr]
    victim_case = router.case(victim)
    assert victim_case is not None
    assert [m.text for m in victim_case.messages] == ["Order 123 to 1 Main St has not arrived."]
    # The victim's own reply still threads.
    out = router.apply(
        feedback(
            "Any news?", customer="victim@example.com", in_reply_to="<victim-msg-1@example.com>"
        ),
        T0 + timedelta(minutes=2),
    )
    assert only_case(out) == victim


def test_chat_conversations_of_different_customers_stay_apart() -> None:
    router = engine(agent("a"), agent("b"))
    first = only_case(
        router.apply(
            feedback("Hi", customer="c-1", channel=Channel.CHAT, conversation_id="conv-7"), T0
        )
    )
    second = only_case(
        router.apply(
            feedback("Hello", customer="c-2", channel=Channel.CHAT, conversation_id="conv-7"),
            T0 + timedelta(seconds=5),
        )
    )
    assert first != second


def test_thread_keys_are_scoped_by_platform_and_customer() -> None:
    base = feedback(customer="c-1", in_reply_to="<m@x>", conversation_id="conv-1")
    other_customer = feedback(customer="c-2", in_reply_to="<m@x>", conversation_id="conv-1")
    event = base.feedback.feedback
    other_platform = base.feedback.model_copy(
        update={
            "feedback": event.model_copy(
                update={"source": event.source.model_copy(update={"platform": "shop-b"})}
            )
        }
    )
    keys = set(_thread_keys(base.feedback))
    assert keys
    assert not keys & set(_thread_keys(other_customer.feedback))
    assert not keys & set(_thread_keys(other_platform))


# ------------------------------------------------------------------ item 7: roster authority


def _stored(agent_id: str, **overrides: object) -> AgentRecord:
    return AgentRecord(
        profile=AgentProfile.model_validate(agent(agent_id, **overrides)),
        presence=Presence.AWAY,
        hostile_streak=1,
    )


def test_the_roster_file_wins_over_stored_identity_token_and_tier() -> None:
    router = engine(agent("a", token_sha256=hash_token("new-token")))
    stored = _stored("a", name="Mallory", tier="supervisor", token_sha256=hash_token("old-token"))
    ghost = _stored("ghost", tier="supervisor", token_sha256=hash_token("ghost-token"))
    router.reset(records=(), agents=[stored, ghost])
    assert router.agent_by_token("old-token") is None, "a rotated token still works"
    assert router.agent_by_token("ghost-token") is None, "an agent not in the roster works"
    profile = router.agent_by_token("new-token")
    assert profile is not None
    assert (profile.name, profile.tier) == ("A", AgentTier.FRONTLINE)
    # Runtime state stays with the stored record.
    assert router.agents["a"].presence == Presence.AWAY
    assert router.agents["a"].hostile_streak == 1
    assert "ghost" not in router.agents


def _roster_file(tmp_path: Path, token: str) -> Path:
    path = tmp_path / "roster.yaml"
    roster = {
        "default_team": "care",
        "teams": [{"id": "care", "name": "Care", "categories": ["delay"]}],
        "agents": [agent("amy", token_sha256=hash_token(token))],
    }
    path.write_text(json.dumps(roster))
    return path


def test_production_refuses_a_published_development_token(tmp_path: Path) -> None:
    settings = RouterSettings(
        environment="production", roster_file=_roster_file(tmp_path, "dev-amy")
    )
    with pytest.raises(RosterError, match="amy"):
        build_engine_factory(settings)
    fine = RouterSettings(environment="production", roster_file=_roster_file(tmp_path, "s3cret"))
    assert build_engine_factory(fine)() is not None
    dev = RouterSettings(environment="development", roster_file=_roster_file(tmp_path, "dev-amy"))
    assert build_engine_factory(dev)() is not None


# ------------------------------------------------------------------ item 8: supervisors


def test_a_supervisor_cannot_change_an_agents_token_or_tier() -> None:
    router = engine(
        agent("boss", tier="supervisor", token_sha256=hash_token("boss-token")),
        agent("a", token_sha256=hash_token("a-token")),
    )
    for change in (
        {"token_sha256": hash_token("boss-token")},  # a second agent with the boss's token
        {"token_sha256": hash_token("mine-now")},
        {"tier": "supervisor"},
    ):
        profile = AgentProfile.model_validate(agent("a", **change))
        out = router.apply(command("boss", Action.UPSERT_AGENT, profile=profile), T0)
        assert out.result is not None
        assert out.result.status == Status.INVALID, change
    assert router.agent_by_token("a-token") is not None
    assert router.agent_by_token("mine-now") is None
    boss = router.agent_by_token("boss-token")
    assert boss is not None
    assert boss.id == "boss"
    assert router.agents["a"].profile.tier == AgentTier.FRONTLINE
    # Other attributes may still change; token and tier stay the roster's.
    profile = AgentProfile.model_validate(
        agent("a", skills={"delay": 1}, token_sha256=None, tier="frontline")
    )
    out = router.apply(command("boss", Action.UPSERT_AGENT, profile=profile), T0)
    assert out.result is not None
    assert out.result.status == Status.OK, out.result
    assert router.agents["a"].profile.skills == {"delay": 1}
    assert router.agent_by_token("a-token") is not None
    # Agents are added in the roster file, where their tokens are.
    stranger = AgentProfile.model_validate(agent("zed", tier="supervisor"))
    out = router.apply(command("boss", Action.UPSERT_AGENT, profile=stranger), T0)
    assert out.result is not None
    assert out.result.status == Status.INVALID
    assert "zed" not in router.agents


def test_only_a_supervisor_records_csat() -> None:
    router = engine(agent("a"), agent("boss", tier="supervisor", presence="away"))
    case_id = only_case(router.apply(feedback(), T0))
    router.apply(command("a", Action.ACCEPT, case_id), T0)
    router.apply(command("a", Action.RESOLVE, case_id), T0)
    out = router.apply(command("a", Action.CSAT, case_id, score=5), T0)
    assert out.result is not None
    assert out.result.status == Status.FORBIDDEN
    assert router.case(case_id).csat is None  # type: ignore[union-attr]
    out = router.apply(command("boss", Action.CSAT, case_id, score=2), T0)
    assert out.result is not None
    assert out.result.status == Status.OK
    assert router.case(case_id).csat == 2  # type: ignore[union-attr]


# ------------------------------------------------------------------ item 10: record size


@pytest.mark.parametrize("filler", ["x", "\x01"])
def test_case_events_and_stored_cases_stay_under_the_record_limit(filler: str) -> None:
    router = engine(agent("a"))
    long_text = filler * 19_990  # with its number, within the 20,000 characters ingest takes
    case_id = only_case(router.apply(feedback(long_text, customer="c-big"), T0))
    for n in range(1, 25):
        at = T0 + timedelta(minutes=n)
        out = router.apply(
            feedback(
                f"{n} {long_text}",
                customer="c-big",
                in_reply_to=f"<{'r' * 990}{n}>",
                message_id=f"<{'m' * 990}{n}>",
                at=at,
            ),
            at,
        )
        assert only_case(out) == case_id
        for payload in out.payloads:
            assert len(payload) < RECORD_LIMIT // 2, (n, len(payload))
        record = router.record(case_id)
        assert record is not None
        assert len(record.model_dump_json().encode()) < RECORD_LIMIT // 2
    case = router.case(case_id)
    assert case is not None
    assert case.state != CaseState.RESOLVED
    # The latest message is carried whole; earlier ones as excerpts that say so.
    assert case.messages[-1].text == f"24 {long_text}"
    assert case.messages[-1].text_chars is None
    earlier = case.messages[0]
    assert earlier.text_chars == len(f"5 {long_text}")
    assert len(earlier.text) < 2_000


def test_the_inbox_record_leaves_out_what_routing_never_reads() -> None:
    message = feedback("Where is my refund?", channel=Channel.CHAT).feedback
    turns = tuple(ChatTurn(role=ChatRole.CUSTOMER, text="\x01" * 30_000) for _ in range(10))
    event = message.feedback.model_copy(update={"chat": ChatDetails(transcript=turns)})
    message = message.model_copy(update={"feedback": event})
    assert len(message.model_dump_json()) > RECORD_LIMIT
    value = inbox_record(message, T0)
    assert len(value) < 10_000
    inbound = ClassifiedIn.model_validate_json(value)
    assert inbound.feedback.feedback.text == "Where is my refund?"
    assert inbound.feedback.event_id == message.event_id
