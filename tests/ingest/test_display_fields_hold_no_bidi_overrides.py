"""Subjects, names and file names are shown to agents as they are: a bidirectional override or
isolate (U+202A-U+202E, U+2066-U+2069) could make ``invoice\\u202egnp.exe`` read as
``invoiceexe.png``, so normalisation drops them on every channel."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.messages import FeedbackReceived
from services.ingest import normalise
from services.ingest.email import parse_email
from services.ingest.models import ChatIn, CloudEventIn, FeedbackIn, SocialIn

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
SPOOF = "invoice\u202egnp.exe"


def _shown(event: FeedbackReceived) -> list[str]:
    """Every subject, name and file name of the event an agent may see."""
    shown = [event.subject, event.customer.name, event.customer.handle]
    if event.chat is not None:
        shown += [turn.author for turn in event.chat.transcript]
    if event.email is not None:
        shown += [attachment.filename for attachment in event.email.attachments]
    return [value for value in shown if value is not None]


def _assert_clean(event: FeedbackReceived, expected: int) -> None:
    shown = _shown(event)
    assert len(shown) >= expected, shown
    for value in shown:
        assert not set(value) & set(BIDI), repr(value)


def test_canonical_and_cloudevent() -> None:
    fields: dict[str, Any] = {
        "channel": "web",
        "customer": {"id": "c", "name": f"Mal{BIDI}lory", "handle": f"@{SPOOF}"},
        "subject": f"Re: {SPOOF}",
        "text": "hello",
    }
    body = FeedbackIn.model_validate({"id": "f-1", **fields})
    event = normalise.from_feedback(body, platform="p", max_text_chars=1000, now=NOW)
    _assert_clean(event, 3)
    assert event.subject == "Re: invoicegnp.exe"
    assert event.customer.name == "Mallory"
    envelope = CloudEventIn.model_validate(
        {
            "specversion": "1.0",
            "id": "ce-1",
            "source": "/x",
            "type": "t",
            "subject": f"{BIDI}urgent",
            "data": {k: v for k, v in fields.items() if k != "subject"},
        }
    )
    event = normalise.from_cloudevent(envelope, platform="p", max_text_chars=1000, now=NOW)
    _assert_clean(event, 3)
    assert event.subject == "urgent"


def test_chat() -> None:
    chat = ChatIn.model_validate(
        {
            "id": "ch-1",
            "customer": {"id": "c", "name": SPOOF},
            "subject": SPOOF,
            "turns": [
                {"role": "customer", "text": "hi", "author": SPOOF},
                {"role": "agent", "text": "hello", "author": f"Support{BIDI}"},
            ],
        }
    )
    event = normalise.from_chat(chat, platform="p", max_text_chars=1000, now=NOW)
    _assert_clean(event, 4)
    assert event.chat is not None
    assert [turn.author for turn in event.chat.transcript] == ["invoicegnp.exe", "Support"]


def test_social() -> None:
    social = SocialIn.model_validate(
        {"id": "s-1", "network": "x", "author": {"handle": f"@{SPOOF}", "name": SPOOF}, "text": "x"}
    )
    event = normalise.from_social(social, platform="p", max_text_chars=1000, now=NOW)
    _assert_clean(event, 2)
    assert event.social is not None
    assert not set(event.social.handle) & set(BIDI)


def test_email() -> None:
    raw = (
        "From: =?utf-8?b?{name}?= <mallory@example.com>\r\n"
        "Subject: =?utf-8?b?{subject}?=\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nPlease see the attached invoice.\r\n"
        "--b\r\nContent-Type: application/octet-stream\r\n"
        "Content-Disposition: attachment; filename*=utf-8''{filename}\r\n\r\nAAAA\r\n--b--\r\n"
    )

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    parsed = parse_email(
        raw.format(name=b64(f"Bank{BIDI}"), subject=b64(SPOOF), filename=quote(SPOOF)).encode()
    )
    event = normalise.from_email(
        parsed, source_event_id="m-1", platform="p", max_text_chars=1000, now=NOW
    )
    _assert_clean(event, 3)
    assert event.email is not None
    assert [a.filename for a in event.email.attachments] == ["invoicegnp.exe"]


def _named(source_id: str, name: str) -> FeedbackIn:
    return FeedbackIn.model_validate(
        {
            "id": source_id,
            "channel": "web",
            "customer": {"id": "c", "name": name},
            "subject": name,
            "text": "x",
        }
    )


@given(st.text(alphabet=st.sampled_from(BIDI + "ab.\u05d0\u0627"), max_size=40))
def test_no_override_survives(name: str) -> None:
    body = _named("h-1", name)
    event = normalise.from_feedback(body, platform="p", max_text_chars=1000, now=NOW)
    for value in _shown(event):
        assert not set(value) & set(BIDI)
        # Right-to-left letters themselves are kept.
        assert value == "".join(c for c in name if c not in BIDI) or not value.strip()


@pytest.mark.parametrize("name", [BIDI, f" {BIDI} "])
def test_a_name_of_nothing_but_overrides_is_no_name(name: str) -> None:
    body = _named("n-1", name)
    event = normalise.from_feedback(body, platform="p", max_text_chars=1000, now=NOW)
    assert event.customer.name is None
    assert event.subject is None
