"""CloudEvents in every content mode the HTTP binding defines: structured, binary (attributes in
``ce-*`` headers) and batch; the CloudEvents SDK is the reference client."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from services.common.kafka import KafkaSettings
from services.common.messages import event_id_for
from services.ingest.auth import compute_signature, generate_key, hash_key
from tests.ingest.conftest import DEV_AUTH
from tests.support.kafka import read_records
from tests.support.problems import assert_problem

DATA = {"channel": "email", "customer": {"id": "c-ce"}, "text": "The refund never arrived."}
SIGNED_KEY = generate_key()
SECRET = "ce-signing-secret"


def _event(event_id: str, **attributes: Any) -> CloudEvent:
    return CloudEvent(
        attributes={
            "type": "com.example.feedback",
            "source": "/zendesk/acme",
            "id": event_id,
            "datacontenttype": "application/json",
            **attributes,
        },
        data=dict(DATA),
    )


def _binary(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    message = ce_http.to_binary(event, JSONFormat())
    return dict(message.headers), message.body


async def test_a_binary_mode_event_is_the_same_event_as_in_structured_mode(
    ingest: httpx.AsyncClient, kafka: KafkaSettings, topic: str
) -> None:
    subject = "Rückerstattung \u2013 «bitte»"  # percent-encoded in its header
    when = datetime(2026, 12, 1, 10, tzinfo=UTC)
    headers, body = _binary(_event("ce-bin-1", subject=subject, time=when))
    assert headers["ce-subject"] != subject
    response = await ingest.post("/v1/feedback", content=body, headers={**DEV_AUTH, **headers})
    assert response.status_code == 202, response.text
    (record,) = await read_records(kafka, topic, expected=1)
    event = record.json()
    assert event["source"] == {"platform": "dev", "event_id": "ce-bin-1"}
    assert event["subject"] == subject
    assert datetime.fromisoformat(event["occurred_at"]) == when
    assert event["text"] == DATA["text"]
    # The same event in structured mode is a repeat of it, not a second event.
    structured = ce_http.to_structured(_event("ce-bin-1", subject=subject, time=when), JSONFormat())
    again = await ingest.post(
        "/v1/feedback", content=structured.body, headers={**DEV_AUTH, **structured.headers}
    )
    assert again.status_code == 200
    assert again.json()["event_id"] == str(event_id_for("dev", "ce-bin-1"))


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        (lambda h: h.pop("ce-id"), ["header", "ce-id"]),
        (lambda h: h.update({"ce-specversion": "0.3"}), ["header", "ce-specversion"]),
        (lambda h: h.update({"ce-subject": "%FF%FE"}), ["header", "ce-subject"]),
    ],
    ids=["no id", "another specversion", "not UTF-8"],
)
async def test_bad_binary_attributes_are_named(
    ingest: httpx.AsyncClient, change: Any, loc: list[str]
) -> None:
    headers, body = _binary(_event("ce-bad"))
    change(headers)
    response = await ingest.post("/v1/feedback", content=body, headers={**DEV_AUTH, **headers})
    problem = assert_problem(response, 422, "validation-error")
    assert [error["loc"] for error in problem["errors"]] == [loc]


async def test_binary_mode_data_is_validated_where_it_is(ingest: httpx.AsyncClient) -> None:
    headers, _ = _binary(_event("ce-data"))
    body = json.dumps({**DATA, "text": 42}).encode()
    response = await ingest.post("/v1/feedback", content=body, headers={**DEV_AUTH, **headers})
    problem = assert_problem(response, 422, "validation-error")
    assert [error["loc"] for error in problem["errors"]] == [["body", "text"]]
    headers["content-type"] = "text/plain"
    response = await ingest.post("/v1/feedback", content=body, headers={**DEV_AUTH, **headers})
    assert_problem(response, 415, None)


async def test_the_signature_covers_the_attribute_headers(ingest_factory: Any) -> None:
    headers, body = _binary(_event("ce-signed"))
    timestamp = str(int(time.time()))
    signature = compute_signature(
        SECRET,
        timestamp,
        body,
        cloudevent_headers=[(k, v) for k, v in headers.items() if k[:3] == "ce-"],
    )
    signed = {
        **headers,
        "Authorization": f"Bearer {SIGNED_KEY}",
        "X-Triage-Timestamp": timestamp,
        "X-Triage-Signature": signature,
    }
    async with ingest_factory(
        api_keys={"signed": hash_key(SIGNED_KEY)}, hmac_secrets={"signed": SECRET}
    ) as client:
        # Another event id under the same signature: refused.
        forged = await client.post("/v1/feedback", content=body, headers={**signed, "ce-id": "x"})
        assert_problem(forged, 401, None)
        accepted = await client.post("/v1/feedback", content=body, headers=signed)
        assert accepted.status_code == 202, accepted.text


async def test_a_cloudevents_batch_is_answered_item_by_item(
    ingest: httpx.AsyncClient, kafka: KafkaSettings, topic: str
) -> None:
    fmt = JSONFormat()
    events = [json.loads(fmt.write(_event(f"ce-batch-{n}"))) for n in range(3)]
    events[1]["data"]["text"] = ""
    response = await ingest.post(
        "/v1/feedback/batch",
        content=json.dumps(events).encode(),
        headers={**DEV_AUTH, "Content-Type": "application/cloudevents-batch+json"},
    )
    assert response.status_code == 207, response.text
    summary = response.json()
    assert (summary["accepted"], summary["invalid"]) == (2, 1)
    bad = summary["results"][1]
    assert bad["status"] == "invalid"
    assert bad["errors"][0]["loc"][:2] == ["body", 1]
    records = await read_records(kafka, topic, expected=2)
    assert sorted(r.json()["source"]["event_id"] for r in records) == ["ce-batch-0", "ce-batch-2"]


async def test_a_cloudevents_batch_has_the_batch_limit(ingest_factory: Any) -> None:
    fmt = JSONFormat()
    events = [json.loads(fmt.write(_event(f"ce-many-{n}"))) for n in range(3)]
    async with ingest_factory(max_batch_items=2) as client:
        response = await client.post(
            "/v1/feedback/batch",
            content=json.dumps(events).encode(),
            headers={**DEV_AUTH, "Content-Type": "application/cloudevents-batch+json"},
        )
        problem = assert_problem(response, 422, "validation-error")
        assert problem["errors"] == [
            {"loc": ["body"], "msg": "at most 2 events", "type": "too_long"}
        ]
        empty = await client.post(
            "/v1/feedback/batch",
            content=b"[]",
            headers={**DEV_AUTH, "Content-Type": "application/cloudevents-batch+json"},
        )
        assert_problem(empty, 422, "validation-error")
