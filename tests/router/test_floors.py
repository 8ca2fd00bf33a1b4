"""Floors: a roster's independent groups of teams, one engine each, and what travels between
them as inbox records (a message whose tags name another floor, a case transferred or
relabelled there), tested on the pure engines with the records passed by hand."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from services.common.cases import CaseState, SlaMetricName
from services.router.applier import changes
from services.router.book import MOVED_PREFIX
from services.router.commands import Action, CaseArrived, ClassifiedIn, Labels, Status, Tick
from services.router.engine import Engine, EngineSettings, Outcome
from services.router.roster import Roster, RosterError, parse_roster
from tests.router.factories import T0, agent, command, feedback, sla_config

TEAMS: list[dict[str, Any]] = [
    {"id": "care", "name": "Care", "categories": ["product_fault", "delay"], "floor": "front"},
    {"id": "trust", "name": "Trust", "categories": ["trust_privacy"], "floor": "front"},
    {"id": "billing", "name": "Billing", "categories": ["billing", "policy"], "floor": "back"},
]


def two_floors() -> Roster:
    return parse_roster(
        {
            "floors": ["front", "back"],
            "default_team": "care",
            "teams": TEAMS,
            "agents": [
                agent("ann", skills={"delay": 4, "product_fault": 4}),
                agent("sup", tier="supervisor", team="trust", skills={"trust_privacy": 1}),
                agent("bill", team="billing", skills={"billing": 4, "policy": 4, "delay": 2}),
                agent("bea", tier="supervisor", team="billing", skills={"billing": 1}),
            ],
        }
    )


def engines() -> dict[str, Engine]:
    roster = two_floors()
    settings = EngineSettings(offer_timeout=timedelta(seconds=30))
    return {
        floor: Engine(roster, sla_config(), settings, floor=floor) for floor in roster.floor_ids
    }


def deliver(floors: dict[str, Engine], out: Outcome) -> list[Outcome]:
    """Apply what an outcome handed to other floors, as their inbox would."""
    return [floors[h.floor].apply(h.message, h.message.at) for h in out.handoffs]


def test_a_roster_declares_floors_and_each_team_works_on_one() -> None:
    roster = two_floors()
    assert roster.floor_ids == ("front", "back")
    assert (roster.partition_of("front"), roster.partition_of("back")) == (0, 1)
    back = roster.on_floor("back")
    assert [t.id for t in back.teams] == ["billing"]
    assert {a.id for a in back.agents} == {"bill", "bea"}
    assert back.default_team == "billing", "the roster's default team is on another floor"
    single = parse_roster({"default_team": "care", "teams": [TEAMS[0] | {"floor": None}]})
    assert single.floor_ids == ("main",)
    assert single.on_floor("main") is single


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"floors": ["front"]}, "unknown floor 'back'"),
        ({"floors": ["front", "back", "spare"]}, "floor 'spare' has no team"),
        ({"floors": ["front", "front", "back"]}, "unique"),
        ({"floors": []}, "declares no floors"),
        ({"teams": [TEAMS[0] | {"floor": None}, TEAMS[2]]}, "'care' needs a floor"),
        ({"floors": ["Front!", "back"]}, "must match"),
    ],
)
def test_a_roster_with_inconsistent_floors_is_refused(change: dict[str, Any], words: str) -> None:
    data = {"floors": ["front", "back"], "default_team": "care", "teams": TEAMS} | change
    with pytest.raises(RosterError, match=words):
        parse_roster(data)


def test_each_floor_routes_with_its_own_teams_and_agents() -> None:
    floors = engines()
    assert set(floors["front"].agents) == {"ann", "sup"}
    assert set(floors["back"].agents) == {"bill", "bea"}
    out = floors["back"].apply(feedback(category="billing"), T0)
    (case_id,) = out.cases
    case = floors["back"].case(case_id)
    assert case is not None
    assert (case.team, case.offer.agent_id if case.offer else None) == ("billing", "bill")
    assert out.handoffs == []


def test_a_message_for_another_floor_is_handed_on_once_and_its_thread_follows() -> None:
    floors = engines()
    message = feedback(category="billing", customer="c1")
    out = floors["front"].apply(message, T0)
    assert (out.cases, out.events) == (set(), []), "nothing happens on the wrong floor"
    (handoff,) = out.handoffs
    assert handoff.floor == "back"
    assert isinstance(handoff.message, ClassifiedIn)
    assert handoff.message.handed_from == "front"
    assert out.moved == ["c1"]
    (there,) = deliver(floors, out)
    (case_id,) = there.cases
    assert floors["back"].case(case_id) is not None
    # A follow-up the forwarder still brings to the front floor, tagged for the front, joins the
    # customer's case on the back floor: the customer is noted as gone there.
    later = T0 + timedelta(minutes=5)
    follow_up = floors["front"].apply(feedback(category="delay", customer="c1", at=later), later)
    (joined,) = deliver(floors, follow_up)
    assert joined.cases == {case_id}
    case = floors["back"].case(case_id)
    assert case is not None
    assert len(case.messages) == 2
    # A handed-on message is not handed on again, even where this floor would: it stays.
    bounced = ClassifiedIn.model_validate(
        feedback(category="delay", customer="c2").model_dump() | {"handed_from": "front"}
    )
    stays = floors["back"].apply(bounced, T0)
    assert stays.handoffs == []
    (kept,) = stays.cases
    assert floors["back"].case(kept).team == "billing"  # type: ignore[union-attr]


def test_a_customer_note_expires_after_the_thread_window() -> None:
    floors = engines()
    floors["front"].apply(feedback(category="billing", customer="c1"), T0)
    later = T0 + timedelta(hours=25)
    out = floors["front"].apply(Tick(at=later), later)
    assert out.moved == ["c1"], "the note is deleted from storage"
    cases, _ = changes([out], floors["front"])
    assert cases == {MOVED_PREFIX + "c1": None}
    fresh = floors["front"].apply(feedback(category="delay", customer="c1", at=later), later)
    assert fresh.handoffs == []
    assert len(fresh.cases) == 1


def test_a_case_transferred_to_another_floor_moves_with_its_clocks() -> None:
    floors = engines()
    created = floors["front"].apply(feedback(category="delay", customer="c9"), T0)
    (case_id,) = created.cases
    floors["front"].apply(command("ann", Action.ACCEPT, case_id), T0)
    later = T0 + timedelta(minutes=2)
    out = floors["front"].apply(
        command("ann", Action.TRANSFER, case_id, to_team="billing", at=later), later
    )
    assert out.result is not None
    assert out.result.status == Status.OK
    assert floors["front"].case(case_id) is None
    assert case_id not in floors["front"].agents["ann"].holding
    (event,) = [e for e in out.events if e.case_id == case_id]
    assert (event.type, event.detail["to_team"], event.detail["to_floor"]) == (
        "transferred",
        "billing",
        "back",
    )
    cases, agents = changes([out], floors["front"])
    assert cases[str(case_id)] is None, "the case leaves the floor's table"
    assert cases[MOVED_PREFIX + "c9"]["floor"] == "back"
    assert "ann" in agents
    (handoff,) = out.handoffs
    assert isinstance(handoff.message, CaseArrived)
    first_response = handoff.message.clocks[SlaMetricName.FIRST_RESPONSE]
    (arrived,) = deliver(floors, out)
    case = floors["back"].case(case_id)
    assert case is not None
    assert (case.team, case.state, case.offer.agent_id if case.offer else None) == (
        "billing",
        CaseState.OFFERED,
        "bill",
    )
    assert floors["back"].record(case_id).clocks[SlaMetricName.FIRST_RESPONSE] == first_response  # type: ignore[union-attr]
    assert [e.type for e in arrived.events] == ["offered"]
    # The same hand-over again (the front worker replayed it after a crash) changes nothing.
    again = floors["back"].apply(handoff.message, later)
    assert again.duplicate
    assert again.events == []
    # A follow-up brought to the front floor follows the case.
    follow = T0 + timedelta(minutes=9)
    note = floors["front"].apply(feedback(category="delay", customer="c9", at=follow), follow)
    (joined,) = deliver(floors, note)
    assert joined.cases == {case_id}


def test_a_relabel_to_another_floors_team_moves_the_case() -> None:
    floors = engines()
    created = floors["front"].apply(feedback(category="delay", customer="c5"), T0)
    (case_id,) = created.cases
    out = floors["front"].apply(
        command("sup", Action.RELABEL, case_id, labels=Labels(category="billing")), T0
    )
    assert out.result is not None
    assert out.result.status == Status.OK
    assert floors["front"].case(case_id) is None
    assert [h.floor for h in out.handoffs] == ["back"]
    deliver(floors, out)
    case = floors["back"].case(case_id)
    assert case is not None
    assert case.team == "billing"
    assert case.category == "billing"


def test_agents_move_floors_only_in_the_roster_file() -> None:
    floors = engines()
    profile = floors["front"].agents["ann"].profile.model_copy(update={"team": "billing"})
    out = floors["front"].apply(command("sup", Action.UPSERT_AGENT, profile=profile), T0)
    assert out.result is not None
    assert out.result.status == Status.INVALID
    assert "on floor 'back'" in (out.result.message or "")


def test_the_notes_survive_a_reload() -> None:
    floors = engines()
    out = floors["front"].apply(feedback(category="billing", customer="c1"), T0)
    cases, _ = changes([out], floors["front"])
    reloaded = engines()["front"]
    from services.router.book import Moved

    reloaded.reset(
        records=[],
        agents=[],
        moved=[Moved.model_validate(v) for k, v in cases.items() if k.startswith(MOVED_PREFIX)],
    )
    later = T0 + timedelta(minutes=1)
    again = reloaded.apply(feedback(category="delay", customer="c1", at=later), later)
    assert [h.floor for h in again.handoffs] == ["back"]
    assert uuid.UUID(int=0) not in again.cases


def test_a_simulation_routes_every_floor_of_the_roster_as_one() -> None:
    whole = two_floors().as_one_floor()
    assert whole.floors == ()
    assert {team.floor for team in whole.teams} == {None}
    engine = Engine(whole, sla_config(), EngineSettings())
    out = engine.apply(feedback(category="billing"), T0)
    assert out.handoffs == []
    (case_id,) = out.cases
    assert engine.case(case_id).team == "billing"  # type: ignore[union-attr]


def test_a_message_read_again_after_its_case_left_the_floor_changes_nothing() -> None:
    """The inbox replayed after a crash brings back messages of a case that has since moved to
    another floor: they are known, not a new case (whether or not handed on)."""
    floors = engines()
    opening = feedback(category="billing", customer="c7")
    handed = ClassifiedIn.model_validate(opening.model_dump() | {"handed_from": "front"})
    created = floors["back"].apply(handed, T0)
    (case_id,) = created.cases
    later = T0 + timedelta(minutes=1)
    follow = ClassifiedIn.model_validate(
        feedback(category="billing", customer="c7", at=later).model_dump()
        | {"handed_from": "front"}
    )
    assert floors["back"].apply(follow, later).cases == {case_id}
    floors["back"].apply(command("bill", Action.ACCEPT, case_id, at=later), later)
    moved = floors["back"].apply(
        command("bill", Action.TRANSFER, case_id, to_team="care", at=later), later
    )
    assert [h.floor for h in moved.handoffs] == ["front"]
    # A later message handed on keeps the note's case.
    floors["back"].apply(feedback(category="delay", customer="c7", at=later), later)
    for again in (handed, follow, opening):
        replayed = floors["back"].apply(again, later)
        assert replayed.duplicate
        assert (replayed.cases, replayed.events, replayed.handoffs) == (set(), [], [])
    assert floors["back"].case(case_id) is None
