"""Every decoder of a Kafka record or stored table value refuses anything it cannot read with a
validation error, and nothing else: what raises anything else stops a worker's stream instead of
reaching the dead-letter topic."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from services.classifier import history
from services.classifier.pipeline import RawRecord, decode
from services.common.cases import CaseEvent
from services.common.messages import DeadLetter, FeedbackClassified, FeedbackReceived
from services.router.commands import Action, CommandResult, Inbound, Status, Tick
from services.router.engine import AgentRecord, CaseRecord
from tests.hostile.strategies import NOW, json_values, mutated, record_values
from tests.router import factories

INBOX = TypeAdapter[Inbound](Inbound)


def _seeds() -> dict[str, list[Any]]:
    """Valid documents of every kind, as the services write them."""
    engine = factories.engine(factories.agent("amy"), factories.agent("bob"))
    message = factories.feedback("My parcel is late.", customer="c-1", amounts=(49.99,))
    outcome = engine.apply(message, factories.T0)
    case_id = outcome.events[0].case_id
    accepted = engine.apply(factories.command("amy", Action.ACCEPT, case_id), factories.T0)
    record = engine.record(case_id)
    agent = engine.agent_record("amy")
    assert record is not None
    assert agent is not None
    assert accepted.result is not None
    letter = DeadLetter.for_record(
        topic="t",
        partition=0,
        offset=7,
        key=b"k",
        value=b"{",
        reason="invalid",
        error_type="ValidationError",
        service="classifier",
        now=NOW,
    )
    dump: Callable[[Any], Any] = lambda model: json.loads(model.model_dump_json())  # noqa: E731
    return {
        "FeedbackReceived": [dump(message.feedback.feedback)],
        "FeedbackClassified": [dump(message.feedback)],
        "Inbound": [
            dump(message),
            dump(factories.command("amy", Action.RESOLVE, case_id, note="done")),
            dump(Tick(at=NOW)),
        ],
        "CaseEvent": [json.loads(payload) for payload in outcome.payloads + accepted.payloads],
        "DeadLetter": [dump(letter)],
        "CommandResult": [
            dump(accepted.result),
            dump(CommandResult(command_id=uuid.uuid4(), status=Status.CONFLICT, message="x")),
        ],
        "CaseRecord": [record.model_dump(mode="json")],
        "AgentRecord": [agent.model_dump(mode="json")],
    }


SEEDS = _seeds()
JSON_DECODERS: dict[str, Callable[[bytes], object]] = {
    "FeedbackReceived": FeedbackReceived.model_validate_json,
    "FeedbackClassified": FeedbackClassified.model_validate_json,
    "Inbound": INBOX.validate_json,
    "CaseEvent": CaseEvent.model_validate_json,
    "DeadLetter": DeadLetter.model_validate_json,
    "CommandResult": CommandResult.model_validate_json,
}
TABLE_DECODERS: dict[str, Callable[[Any], object]] = {
    "CaseRecord": CaseRecord.model_validate,
    "AgentRecord": AgentRecord.model_validate,
}
SHORT = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LONG = settings(SHORT, max_examples=5000)


def test_seeds_are_valid() -> None:
    for name, decoder in JSON_DECODERS.items():
        for seed in SEEDS[name]:
            decoder(json.dumps(seed).encode())
    for name, table_decoder in TABLE_DECODERS.items():
        for seed in SEEDS[name]:
            table_decoder(seed)


def _only_validation_errors(decoder: Callable[[Any], object], value: Any) -> None:
    with contextlib.suppress(ValidationError):
        decoder(value)


def _check_record(name: str, data: st.DataObject) -> None:
    value = data.draw(record_values(SEEDS[name]), label="value")
    _only_validation_errors(JSON_DECODERS[name], value)


def _check_table_value(name: str, data: st.DataObject) -> None:
    value = data.draw(st.one_of(json_values, mutated(SEEDS[name])), label="value")
    _only_validation_errors(TABLE_DECODERS[name], value)


@pytest.mark.parametrize("name", sorted(JSON_DECODERS))
@SHORT
@given(data=st.data())
def test_record_decoders_raise_only_validation_errors(name: str, data: st.DataObject) -> None:
    _check_record(name, data)


@pytest.mark.parametrize("name", sorted(TABLE_DECODERS))
@SHORT
@given(data=st.data())
def test_table_decoders_raise_only_validation_errors(name: str, data: st.DataObject) -> None:
    _check_table_value(name, data)


@SHORT
@given(st.lists(st.one_of(record_values(SEEDS["FeedbackReceived"]), st.none()), max_size=8))
def test_classifier_batch_decode_never_raises(values: list[bytes | None]) -> None:
    records = [RawRecord("t", 0, offset, b"k", value) for offset, value in enumerate(values)]
    decoded = decode(records, already_seen=lambda _: False, now=NOW)
    assert len(decoded.events) + len(decoded.dead) + len(decoded.duplicates) == len(records)
    for _, letter in decoded.dead:
        assert letter.reason
        assert len(letter.reason) <= 2000
        DeadLetter.model_validate_json(letter.model_dump_json())


@SHORT
@given(st.one_of(json_values, mutated([[{"event_id": "e", "at": NOW.isoformat()}]])))
def test_history_table_values_never_raise(value: Any) -> None:
    entries = history.parse_entries(value)
    history.summarize(entries, now=NOW, window_days=30, repeat_threshold=2)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(JSON_DECODERS))
@LONG
@given(data=st.data())
def test_record_decoders_raise_only_validation_errors_long(name: str, data: st.DataObject) -> None:
    _check_record(name, data)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TABLE_DECODERS))
@LONG
@given(data=st.data())
def test_table_decoders_raise_only_validation_errors_long(name: str, data: st.DataObject) -> None:
    _check_table_value(name, data)
