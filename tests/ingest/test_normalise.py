"""Normalisation rules that need no broker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.common.messages import Channel, event_id_for
from services.ingest import normalise
from services.ingest.models import ChatIn, FeedbackIn, SocialIn

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  hello  ", "hello"),
        ("a\r\nb\rc", "a\nb\nc"),
        ("nul\x00byte", "nulbyte"),
        ("cafe\u0301", "caf\u00e9"),
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert normalise.clean_text(raw, max_chars=100, loc=("body", "text")) == clean


@pytest.mark.parametrize("raw", ["", "   ", "\n\t", "\x00"])
def test_blank_text_is_refused(raw: str) -> None:
    with pytest.raises(normalise.InputError) as error:
        normalise.clean_text(raw, max_chars=100, loc=("body", "text"))
    assert error.value.loc == ("body", "text")


def test_limit_counts_characters_after_cleaning() -> None:
    assert normalise.clean_text(" " + "é" * 10 + " ", max_chars=10, loc=()) == "é" * 10
    with pytest.raises(normalise.InputError, match="longer than 10"):
        normalise.clean_text("é" * 11, max_chars=10, loc=())


def test_event_ids_are_deterministic_per_platform() -> None:
    assert event_id_for("a", "1") == event_id_for("a", "1")
    assert event_id_for("a", "1") != event_id_for("b", "1")
    assert event_id_for("a", "1") != event_id_for("a", "2")


def test_canonical() -> None:
    body = FeedbackIn.model_validate(
        {"id": "1", "channel": "phone", "customer": {"id": "c"}, "text": " x "}
    )
    event = normalise.from_feedback(body, platform="p", max_text_chars=10, now=NOW)
    assert event.channel is Channel.PHONE
    assert event.text == "x"
    assert event.received_at == NOW
    assert event.event_id == event_id_for("p", "1")


def test_social_reach_defaults() -> None:
    public = SocialIn.model_validate(
        {"id": "1", "network": "x", "author": {"handle": "@a", "followers": 50}, "text": "t"}
    )
    event = normalise.from_social(public, platform="p", max_text_chars=10, now=NOW)
    assert event.social is not None
    assert (event.social.public, event.social.reach) == (True, 50)
    explicit = public.model_copy(update={"reach": 900})
    event = normalise.from_social(explicit, platform="p", max_text_chars=10, now=NOW)
    assert event.social is not None
    assert event.social.reach == 900


def test_chat_uses_only_customer_turns() -> None:
    chat = ChatIn.model_validate(
        {
            "id": "1",
            "customer": {"id": "c"},
            "turns": [
                {"role": "customer", "text": "one"},
                {"role": "system", "text": "transferred"},
                {"role": "customer", "text": "two"},
            ],
        }
    )
    event = normalise.from_chat(chat, platform="p", max_text_chars=100, now=NOW)
    assert event.text == "one\ntwo"
    assert event.chat is not None
    assert len(event.chat.transcript) == 3
