"""The e-mail parser and the chat, social, canonical and CloudEvents normalisers, fed anything:
they refuse only with their documented errors, and every event they make is one the classifier
reads back (the event is the contract between the two services)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from services.common.messages import Customer, CustomerTier, FeedbackReceived
from services.ingest import normalise
from services.ingest.email import EmailParseError, parse_email
from services.ingest.models import ChatIn, CloudEventIn, FeedbackIn, SocialIn
from tests.hostile.strategies import NOW, json_values, mutated
from tests.ingest.test_email_parsing import VALID_MESSAGE, random_messages

SHORT = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LONG = settings(SHORT, max_examples=5000)
EXPECTED = (ValidationError, normalise.InputError)


def _examples(model: type[BaseModel]) -> list[Any]:
    extra = model.model_config.get("json_schema_extra")
    assert isinstance(extra, dict)
    examples = extra["examples"]
    assert isinstance(examples, list)
    return examples


NORMALISERS: dict[str, tuple[type[BaseModel], Callable[..., FeedbackReceived]]] = {
    "canonical": (FeedbackIn, normalise.from_feedback),
    "cloudevent": (CloudEventIn, normalise.from_cloudevent),
    "chat": (ChatIn, normalise.from_chat),
    "social": (SocialIn, normalise.from_social),
}


def _read_back(event: FeedbackReceived) -> None:
    """What ingest publishes, the classifier reads: the same event."""
    assert FeedbackReceived.model_validate_json(event.model_dump_json(exclude_none=True)) == event


def _normalise(name: str, body: Any) -> None:
    model, build = NORMALISERS[name]
    try:
        parsed = model.model_validate(body)
        event = build(parsed, platform="fuzz", max_text_chars=2000, now=NOW)
    except EXPECTED:
        return
    _read_back(event)


def _email(raw: bytes, customer_id: str | None) -> None:
    try:
        parsed = parse_email(raw, max_bytes=64 * 1024)
    except EmailParseError:
        return
    customer = None
    if customer_id is not None:
        customer = Customer(id=customer_id, tier=CustomerTier.VIP)
    with contextlib.suppress(*EXPECTED):
        event = normalise.from_email(
            parsed,
            source_event_id=normalise.email_source_id(parsed, raw, None),
            platform="fuzz",
            max_text_chars=2000,
            now=NOW,
            customer=customer,
        )
        _read_back(event)


def _bodies(name: str) -> st.SearchStrategy[Any]:
    return st.one_of(json_values, mutated(_examples(NORMALISERS[name][0])))


emails = st.one_of(
    st.binary(max_size=2048),
    random_messages(),
    st.binary(max_size=512).map(lambda noise: VALID_MESSAGE + noise),
)
customer_ids = st.one_of(st.none(), st.text(min_size=1, max_size=40))


@pytest.mark.parametrize("name", sorted(NORMALISERS))
@SHORT
@given(data=st.data())
def test_normalisers_refuse_only_with_their_errors(name: str, data: st.DataObject) -> None:
    _normalise(name, data.draw(_bodies(name), label="body"))


@SHORT
@given(emails, customer_ids)
def test_emails_refused_only_with_their_errors(raw: bytes, customer_id: str | None) -> None:
    _email(raw, customer_id)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(NORMALISERS))
@LONG
@given(data=st.data())
def test_normalisers_refuse_only_with_their_errors_long(name: str, data: st.DataObject) -> None:
    _normalise(name, data.draw(_bodies(name), label="body"))


@pytest.mark.slow
@LONG
@given(emails, customer_ids)
def test_emails_refused_only_with_their_errors_long(raw: bytes, customer_id: str | None) -> None:
    _email(raw, customer_id)
