"""The inbox's command models: one per action, and the records of the flat model still read.

``router.inbox`` keeps records written when every command was one model with each optional
field present (most of them null); each must read as its action's model, and a field its
action has no use for that is not null must be refused, never dropped."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from services.common.cases import Presence
from services.router.commands import (
    COMMAND_TYPES,
    Accept,
    Action,
    CaseCommand,
    Csat,
    Inbound,
    IncidentRef,
    Labels,
    Relabel,
    SetPresence,
    TagIncident,
    Transfer,
)
from services.router.roster import AgentProfile
from tests.router.factories import agent

INBOX = TypeAdapter[Inbound](Inbound)
COMMAND_ID = uuid.UUID("5b0f6c0e-3f4a-4d8e-9a55-0c1d2e3f4a5b")
CASE_ID = uuid.UUID("a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d")
EVENT_ID = uuid.UUID("0c9d8e7f-6a5b-4c3d-9e1f-2a3b4c5d6e7f")
AT = "2026-11-23T10:00:00Z"

#: The optional fields of the flat model, in its order.
FLAT = (
    "case_id",
    "reason",
    "note",
    "chars",
    "to_team",
    "to_agent",
    "presence",
    "score",
    "labels",
    "profile",
    "incident",
    "event_ids",
)

PROFILE = AgentProfile.model_validate(agent("ann"))

#: What each action's command carried in the flat model (JSON values).
GIVEN: dict[Action, dict[str, Any]] = {
    Action.ACCEPT: {"case_id": str(CASE_ID)},
    Action.DECLINE: {"case_id": str(CASE_ID), "reason": "not my area"},
    Action.RESPOND: {"case_id": str(CASE_ID), "chars": 200},
    Action.WAIT: {"case_id": str(CASE_ID), "reason": "asked for the receipt"},
    Action.RESUME: {"case_id": str(CASE_ID)},
    Action.RESOLVE: {"case_id": str(CASE_ID), "note": "refunded"},
    Action.TRANSFER: {"case_id": str(CASE_ID), "to_team": "trust", "reason": "fraud"},
    Action.ESCALATE: {"case_id": str(CASE_ID)},
    Action.REASSIGN: {"case_id": str(CASE_ID), "to_agent": "bob"},
    Action.CSAT: {"case_id": str(CASE_ID), "score": 4},
    Action.RELABEL: {"case_id": str(CASE_ID), "labels": {"category": "billing"}},
    Action.TAG_INCIDENT: {
        "incident": {"reference": "INC-7", "note": "card outage"},
        "event_ids": [str(EVENT_ID)],
    },
    Action.PRESENCE: {"presence": "away", "to_agent": "bob"},
    Action.UPSERT_AGENT: {"profile": PROFILE.model_dump(mode="json")},
    Action.REMOVE_AGENT: {"to_agent": "bob"},
    Action.DISCONNECTED: {},
}


def flat(action: Action, **given: Any) -> str:
    """A record as the flat model's ``model_dump_json()`` wrote it."""
    record: dict[str, Any] = {
        "schema_version": 1,
        "kind": "command",
        "command_id": str(COMMAND_ID),
        "actor": "ann",
        "action": action.value,
        "at": AT,
    }
    record.update({name: given.get(name) for name in FLAT})
    return json.dumps(record, separators=(",", ":"))


#: Records as the inbox holds them, written by the flat model.
LITERAL = {
    Action.ACCEPT: (
        '{"schema_version":1,"kind":"command","command_id":"5b0f6c0e-3f4a-4d8e-9a55-0c1d2e3f4a5b",'
        '"actor":"ann","action":"accept","at":"2026-11-23T10:00:00Z",'
        '"case_id":"a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d","reason":null,"note":null,"chars":null,'
        '"to_team":null,"to_agent":null,"presence":null,"score":null,"labels":null,'
        '"profile":null,"incident":null,"event_ids":null}'
    ),
    Action.CSAT: (
        '{"schema_version":1,"kind":"command","command_id":"5b0f6c0e-3f4a-4d8e-9a55-0c1d2e3f4a5b",'
        '"actor":"ann","action":"csat","at":"2026-11-23T10:00:00Z",'
        '"case_id":"a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d","reason":null,"note":null,"chars":null,'
        '"to_team":null,"to_agent":null,"presence":null,"score":4,"labels":null,'
        '"profile":null,"incident":null,"event_ids":null}'
    ),
    Action.RELABEL: (
        '{"schema_version":1,"kind":"command","command_id":"5b0f6c0e-3f4a-4d8e-9a55-0c1d2e3f4a5b",'
        '"actor":"ann","action":"relabel","at":"2026-11-23T10:00:00Z",'
        '"case_id":"a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d","reason":null,"note":null,"chars":null,'
        '"to_team":null,"to_agent":null,"presence":null,"score":null,'
        '"labels":{"sentiment":null,"category":"billing","difficult":null},'
        '"profile":null,"incident":null,"event_ids":null}'
    ),
    Action.PRESENCE: (
        '{"schema_version":1,"kind":"command","command_id":"5b0f6c0e-3f4a-4d8e-9a55-0c1d2e3f4a5b",'
        '"actor":"ann","action":"presence","at":"2026-11-23T10:00:00Z","case_id":null,'
        '"reason":null,"note":null,"chars":null,"to_team":null,"to_agent":"bob",'
        '"presence":"away","score":null,"labels":null,"profile":null,"incident":null,'
        '"event_ids":null}'
    ),
}


def test_every_action_has_its_model() -> None:
    assert set(COMMAND_TYPES) == set(Action) == set(GIVEN)
    for action, model in COMMAND_TYPES.items():
        assert model.model_fields["action"].default == action


@pytest.mark.parametrize("action", list(Action))
def test_a_flat_record_reads_as_its_actions_model(action: Action) -> None:
    message = INBOX.validate_json(flat(action, **GIVEN[action]))
    assert type(message) is COMMAND_TYPES[action]
    given = GIVEN[action]
    assert message == COMMAND_TYPES[action].model_validate(
        {"command_id": str(COMMAND_ID), "actor": "ann", "at": AT, **given}
    )
    assert all(getattr(message, name) is not None for name in given)
    # What it writes now reads back the same.
    assert INBOX.validate_json(message.model_dump_json()) == message


@pytest.mark.parametrize("action", list(LITERAL))
def test_a_literal_flat_record_reads(action: Action) -> None:
    message = INBOX.validate_json(LITERAL[action])
    assert message == INBOX.validate_json(flat(action, **GIVEN[action]))


def test_the_literal_records_are_what_the_flat_model_wrote() -> None:
    # The flat record of the relabel command wrote its labels whole (nulls too).
    labelled = {**GIVEN[Action.RELABEL], "labels": Labels(category="billing").model_dump()}
    for action, line in LITERAL.items():
        given = labelled if action == Action.RELABEL else GIVEN[action]
        assert json.loads(line) == json.loads(flat(action, **given))


def test_the_fields_an_action_needs_are_read() -> None:
    csat = INBOX.validate_json(LITERAL[Action.CSAT])
    assert isinstance(csat, Csat)
    assert csat.score == 4
    assert csat.case_id == CASE_ID
    relabel = INBOX.validate_json(LITERAL[Action.RELABEL])
    assert isinstance(relabel, Relabel)
    assert relabel.labels == Labels(category="billing")
    presence = INBOX.validate_json(LITERAL[Action.PRESENCE])
    assert isinstance(presence, SetPresence)
    assert (presence.presence, presence.to_agent) == (Presence.AWAY, "bob")
    accept = INBOX.validate_json(LITERAL[Action.ACCEPT])
    assert isinstance(accept, Accept)
    assert isinstance(accept, CaseCommand)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        # A field its action has no use for, not null: refused, not dropped.
        (flat(Action.ACCEPT, case_id=str(CASE_ID), score=4), "score"),
        (flat(Action.PRESENCE, presence="away", case_id=str(CASE_ID)), "case_id"),
        (flat(Action.RESOLVE, case_id=str(CASE_ID), labels={"category": "billing"}), "labels"),
        # A field its action needs, null or absent.
        (flat(Action.ACCEPT), "case_id"),
        (flat(Action.CSAT, case_id=str(CASE_ID)), "score"),
        (flat(Action.PRESENCE, to_agent="bob"), "presence"),
        (flat(Action.UPSERT_AGENT), "profile"),
        (flat(Action.REASSIGN, case_id=str(CASE_ID)), "to_agent"),
        (flat(Action.TAG_INCIDENT, incident={"reference": "INC-7"}, event_ids=[]), "event_ids"),
        (flat(Action.TRANSFER, case_id=str(CASE_ID), reason="fraud"), "to_team or to_agent"),
        # Limits the flat model had are kept.
        (flat(Action.CSAT, case_id=str(CASE_ID), score=6), "score"),
        (flat(Action.RESPOND, case_id=str(CASE_ID), chars=-1), "chars"),
        # A field no command ever had, even null.
        (flat(Action.ACCEPT, case_id=str(CASE_ID))[:-1] + ',"priority":null}', "priority"),
        # An action there is no model of.
        (flat(Action.ACCEPT, case_id=str(CASE_ID)).replace('"accept"', '"approve"'), "action"),
    ],
)
def test_a_malformed_record_is_refused_clearly(line: str, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        INBOX.validate_json(line)


def test_new_records_carry_only_their_actions_fields() -> None:
    command = Transfer(command_id=COMMAND_ID, actor="ann", at=AT, case_id=CASE_ID, to_agent="bob")
    assert set(json.loads(command.model_dump_json())) == {
        "schema_version",
        "kind",
        "command_id",
        "actor",
        "action",
        "at",
        "case_id",
        "to_team",
        "to_agent",
        "reason",
    }
    incident = TagIncident(
        command_id=COMMAND_ID,
        actor="sup",
        at=AT,
        incident=IncidentRef(reference="INC-7"),
        event_ids=(EVENT_ID,),
    )
    assert INBOX.validate_json(incident.model_dump_json()) == incident
