"""Each channel end to end: HTTP in, the exact normalised event read back from the real topic."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx

from services.common.kafka import KafkaSettings
from services.common.messages import event_id_for
from services.ingest.email import TRUNCATION_MARKER
from tests.ingest.conftest import DEV_AUTH
from tests.support.kafka import read_records
from tests.support.problems import assert_problem


def _without_received_at(event: dict[str, Any]) -> dict[str, Any]:
    received_at = datetime.fromisoformat(event.pop("received_at"))
    assert abs(datetime.now(UTC) - received_at) < timedelta(minutes=1)
    return event


async def _one_event(kafka: KafkaSettings, topic: str) -> tuple[dict[str, Any], bytes | None]:
    (record,) = await read_records(kafka, topic, expected=1)
    assert record.headers["event_type"] == b"FeedbackReceived"
    assert record.headers["event_id"].decode() == record.json()["event_id"]
    return _without_received_at(record.json()), record.key


async def test_minimal_canonical_event(
    ingest: httpx.AsyncClient, kafka: KafkaSettings, topic: str
) -> None:
    body = {"id": "zd-1001", "channel": "email", "customer": {"id": "cust-42"}, "text": "Hi there"}
    response = await ingest.post("/v1/feedback", json=body, headers=DEV_AUTH)
    assert response.status_code == 202, response.text
    event_id = str(event_id_for("dev", "zd-1001"))
    assert response.json() == {"event_id": event_id, "status": "accepted"}
    event, key = await _one_event(kafka, topic)
    assert key == b"cust-42"
    assert event == {
        "schema_version": 1,
        "event_type": "FeedbackReceived",
        "event_id": event_id,
        "source": {"platform": "dev", "event_id": "zd-1001"},
        "channel": "email",
        "customer": {"id": "cust-42"},
        "text": "Hi there",
        "thread": {"references": []},
        "attributes": {},
    }


async def test_full_canonical_event(
    ingest: httpx.AsyncClient, kafka: KafkaSettings, topic: str
) -> None:
    body = {
        "id": "web-77",
        "channel": "social",
        "customer": {
            "id": "cust-9",
            "tier": "vip",
            "language": "en-GB",
            "name": "Jo Bloggs",
            "email": "jo@example.com",
            "phone": "+44 20 7946 0000",
        },
        "subject": "Lost luggage",
        "text": "  Lost my bag\r\nagain.\x00  ",
        "thread": {"conversation_id": "conv-1", "references": ["a", "b"]},
        "occurred_at": "2026-11-20T10:15:00+01:00",
        "social": {"network": "x", "handle": "@jo", "public": True, "followers": 1200},
        "attributes": {"queue": "vip"},
    }
    response = await ingest.post("/v1/feedback", json=body, headers=DEV_AUTH)
    assert response.status_code == 202, response.text
    event, key = await _one_event(kafka, topic)
    assert key == b"cust-9"
    assert event == {
        "schema_version": 1,
        "event_type": "FeedbackReceived",
        "event_id": str(event_id_for("dev", "web-77")),
        "source": {"platform": "dev", "event_id": "web-77"},
        "channel": "social",
        "customer": body["customer"],
        "subject": "Lost luggage",
        "text": "Lost my bag\nagain.",
        "thread": {"conversation_id": "conv-1", "references": ["a", "b"]},
        "occurred_at": "2026-11-20T09:15:00Z",
        "social": {
            "network": "x",
            "kind": "post",
            "handle": "@jo",
            "public": True,
            "followers": 1200,
            "reach": 1200,
            "verified": False,
        },
        "attributes": {"queue": "vip"},
    }


async def test_cloudevent_gives_the_same_event(
    ingest: httpx.AsyncClient, kafka: KafkaSettings, topic: str
) -> None:
    envelope = {
        "specversion": "1.0",
        "id": "ce-5",
        "source": "/helpdesk/acme",
        "type": "com.example.feedback",
        "time": "2026-11-21T08:00:00Z",
        "datacontenttype": "application/json",
        "comexampleextension": "ignored",
        "data": {"channel": "web", "customer": {"id": "c-1"}, "text": "The form is broken"},
    }
    response = await ingest.post(
        "/v1/feedback",
        content=json.dumps(envelope),
        headers={**DEV_AUTH, "Content-Type": "application/cloudevents+json; charset=utf-8"},
    )
    assert response.status_code == 202, response.text
    event, _ = await _one_event(kafka, topic)
    assert event["event_id"] == str(event_id_for("dev", "ce-5"))
    assert event["source"] == {"platform": "dev", "event_id": "ce-5"}
    assert event["channel"] == "web"
    assert event["occurred_at"] == "2026-11-21T08:00:00Z"
    assert event["text"] == "The form is broken"


async def test_chat_transcript(ingest: httpx.AsyncClient, kafka: KafkaSettings, topic: str) -> None:
    body = {
        "id": "chat-1-end",
        "customer": {"id": "cust-7", "language": "en"},
        "conversation_id": "chat-1",
        "turns": [
            {"role": "bot", "text": "Hi! How can I help?"},
            {"role": "customer", "text": "My refund hasn't arrived.", "at": "2026-11-22T10:00:00Z"},
            {"role": "agent", "text": "Let me check.", "author": "agent-5"},
            {"role": "customer", "text": "  It's been three weeks.  "},
            {"role": "customer", "text": "   "},
        ],
    }
    response = await ingest.post("/v1/feedback/chat", json=body, headers=DEV_AUTH)
    assert response.status_code == 202, response.text
    event, key = await _one_event(kafka, topic)
    assert key == b"cust-7"
    assert event["channel"] == "chat"
    assert event["text"] == "My refund hasn't arrived.\nIt's been three weeks."
    assert event["thread"] == {"conversation_id": "chat-1", "references": []}
    assert event["occurred_at"] == "2026-11-22T10:00:00Z"
    assert [t["role"] for t in event["chat"]["transcript"]] == [
        "bot",
        "customer",
        "agent",
        "customer",
        "customer",
    ]
    assert event["chat"]["transcript"][2] == {
        "role": "agent",
        "text": "Let me check.",
        "author": "agent-5",
    }


async def test_social_post_and_direct_message(
    ingest: httpx.AsyncClient, kafka: KafkaSettings, topic: str
) -> None:
    post = {
        "id": "x-1",
        "network": "x",
        "author": {"handle": "@loud", "followers": 48_200, "verified": True},
        "url": "https://x.example/loud/1",
        "text": "@SkylineAir lost my bag AGAIN",
    }
    dm = {
        "id": "x-2",
        "network": "x",
        "kind": "direct_message",
        "author": {"handle": "@quiet", "followers": 10},
        "customer": {"id": "crm-55", "tier": "premium"},
        "text": "where is my refund",
    }
    for body in (post, dm):
        response = await ingest.post("/v1/feedback/social", json=body, headers=DEV_AUTH)
        assert response.status_code == 202, response.text
    records = await read_records(kafka, topic, expected=2)
    events = {r.json()["source"]["event_id"]: r.json() for r in records}
    assert events["x-1"]["customer"] == {"id": "x:@loud", "handle": "@loud"}
    assert events["x-1"]["social"] == {
        "network": "x",
        "kind": "post",
        "handle": "@loud",
        "public": True,
        "followers": 48_200,
        "reach": 48_200,
        "url": "https://x.example/loud/1",
        "verified": True,
    }
    assert events["x-1"]["thread"]["message_id"] == "x-1"
    assert events["x-2"]["customer"] == {"id": "crm-55", "tier": "premium", "handle": "@quiet"}
    assert events["x-2"]["social"]["public"] is False
    assert events["x-2"]["social"]["reach"] == 0


def _email(**headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = headers.pop("From", '"Ana Pérez" <Ana.Perez@Example.com>')
    message["To"] = "support@acme.example"
    message["Subject"] = headers.pop("Subject", "Re: Order A-5521")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    return message


async def test_raw_email_with_threading(
    ingest: httpx.AsyncClient, kafka: KafkaSettings, topic: str
) -> None:
    message = _email(
        Message_ID="<reply-2@mail.example.com>",
        In_Reply_To="<ticket-1@acme.example>",
        References="<orig-0@mail.example.com> <ticket-1@acme.example>",
    )
    message.set_content(
        "The replacement is broken too.\n\n"
        "On Mon, 3 Nov 2025 at 10:02, Support <support@acme.example> wrote:\n"
        "> We have sent a replacement.\n"
    )
    response = await ingest.post(
        "/v1/feedback/email?customer_tier=vip",
        content=message.as_bytes(),
        headers={**DEV_AUTH, "Content-Type": "message/rfc822"},
    )
    assert response.status_code == 202, response.text
    event, key = await _one_event(kafka, topic)
    assert key == b"ana.perez@example.com"
    assert event["event_id"] == str(event_id_for("dev", "reply-2@mail.example.com"))
    assert event["channel"] == "email"
    assert event["customer"] == {
        "id": "ana.perez@example.com",
        "tier": "vip",
        "name": "Ana Pérez",
        "email": "ana.perez@example.com",
    }
    assert event["subject"] == "Re: Order A-5521"
    assert event["text"] == "The replacement is broken too."
    assert event["thread"] == {
        "message_id": "reply-2@mail.example.com",
        "in_reply_to": "ticket-1@acme.example",
        "references": ["orig-0@mail.example.com", "ticket-1@acme.example"],
    }
    assert event["email"]["sender"] == "ana.perez@example.com"
    assert event["email"]["recipients"] == ["support@acme.example"]


async def test_email_without_message_id_is_deduplicated_by_content(
    ingest: httpx.AsyncClient, kafka: KafkaSettings, topic: str
) -> None:
    message = _email()
    message.set_content("Nobody called me back.")
    raw = message.as_bytes()
    headers = {**DEV_AUTH, "Content-Type": "message/rfc822"}
    first = await ingest.post("/v1/feedback/email", content=raw, headers=headers)
    second = await ingest.post("/v1/feedback/email", content=raw, headers=headers)
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json()["event_id"] == second.json()["event_id"]
    assert len(await read_records(kafka, topic, expected=1, settle_s=1.0)) == 1


async def test_batch_reports_each_item(
    ingest: httpx.AsyncClient, kafka: KafkaSettings, topic: str
) -> None:
    good = {"id": "b-1", "channel": "survey", "customer": {"id": "c1"}, "text": "Great staff"}
    await ingest.post("/v1/feedback", json={**good, "id": "b-0"}, headers=DEV_AUTH)
    items = [
        good,
        {"id": "b-2", "channel": "fax", "customer": {"id": "c2"}, "text": "x"},
        {"id": "b-0", "channel": "survey", "customer": {"id": "c1"}, "text": "again"},
        {"id": "b-3", "channel": "phone", "customer": {"id": "c3"}, "text": "   "},
        {**good, "id": "b-4", "customer": {"id": "c4"}},
        good,
    ]
    response = await ingest.post("/v1/feedback/batch", json={"items": items}, headers=DEV_AUTH)
    assert response.status_code == 207, response.text
    result = response.json()
    assert [r["status"] for r in result["results"]] == [
        "accepted",
        "invalid",
        "duplicate",
        "invalid",
        "accepted",
        "duplicate",
    ]
    assert (result["accepted"], result["duplicates"], result["invalid"]) == (2, 2, 2)
    assert result["results"][1]["errors"][0]["loc"] == ["body", "items", 1, "channel"]
    assert result["results"][3]["errors"][0]["loc"] == ["body", "items", 3, "text"]
    records = await read_records(kafka, topic, expected=3, settle_s=1.0)
    assert sorted(r.json()["source"]["event_id"] for r in records) == ["b-0", "b-1", "b-4"]


async def test_batch_limit(ingest_factory: Any) -> None:
    async with ingest_factory(max_batch_items=2) as client:
        items = [
            {"id": f"i{n}", "channel": "web", "customer": {"id": "c"}, "text": "t"}
            for n in range(3)
        ]
        response = await client.post("/v1/feedback/batch", json={"items": items}, headers=DEV_AUTH)
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["msg"] == "at most 2 items"
    assert "at most 2 items" in problem["detail"]


async def test_repeated_event_is_accepted_once(
    ingest: httpx.AsyncClient, kafka: KafkaSettings, topic: str
) -> None:
    body = {"id": "dup-1", "channel": "chat", "customer": {"id": "c"}, "text": "hello"}
    first = await ingest.post("/v1/feedback", json=body, headers=DEV_AUTH)
    again = await ingest.post("/v1/feedback", json={**body, "text": "changed"}, headers=DEV_AUTH)
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json() == {"event_id": first.json()["event_id"], "status": "duplicate"}
    records = await read_records(kafka, topic, expected=1, settle_s=1.0)
    assert [r.json()["text"] for r in records] == ["hello"]


async def test_concurrent_repeats_produce_one_event(
    ingest: httpx.AsyncClient, kafka: KafkaSettings, topic: str
) -> None:
    import asyncio

    body = {"id": f"race-{uuid.uuid4()}", "channel": "web", "customer": {"id": "c"}, "text": "x"}
    responses = await asyncio.gather(
        *(ingest.post("/v1/feedback", json=body, headers=DEV_AUTH) for _ in range(20))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 19 + [202]
    assert len({r.json()["event_id"] for r in responses}) == 1
    assert len(await read_records(kafka, topic, expected=1, settle_s=1.0)) == 1


async def test_an_email_over_the_configured_text_limit_keeps_its_first_lines(
    ingest_factory: Any, kafka: KafkaSettings, topic: str
) -> None:
    message = _email()
    opening = "My washing machine leaks from the door seal on every wash."
    message.set_content(opening + "\n\n" + "It started last month and got worse. " * 60)
    async with ingest_factory(max_text_chars=300) as client:
        response = await client.post(
            "/v1/feedback/email",
            content=message.as_bytes(),
            headers={**DEV_AUTH, "Content-Type": "message/rfc822"},
        )
    assert response.status_code == 202, response.text
    event, _ = await _one_event(kafka, topic)
    assert event["text"].startswith(opening)
    assert len(event["text"]) <= 300
    assert event["text"].endswith(TRUNCATION_MARKER)
