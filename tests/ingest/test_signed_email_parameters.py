"""A signed e-mail's query parameters (customer id, tier, language) and its Idempotency-Key are
covered by the signature: whoever changes them without the secret is refused, so a captured
request cannot be re-posted under another customer or as a new event."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from services.common.kafka import KafkaSettings
from services.ingest.auth import compute_signature, generate_key, hash_key
from tests.support.kafka import read_records

KEY = generate_key()
SECRET = "email-parameters-signing-secret"
EMAIL = (
    b"From: jane@example.com\r\nMessage-ID: <p-1@example.com>\r\nSubject: broken\r\n\r\n"
    b"My order arrived broken.\r\n"
)
QUERY = {"customer_id": "cust-42", "customer_tier": "premium", "language": "en-GB"}


@pytest.fixture
async def signed(ingest_factory: Any) -> Any:
    async with ingest_factory(
        environment="production", api_keys={"mail": hash_key(KEY)}, hmac_secrets={"mail": SECRET}
    ) as client:
        yield client


def _headers(query: str, idempotency_key: str | None, *, body: bytes = EMAIL) -> dict[str, str]:
    timestamp = str(int(time.time()))
    if query or idempotency_key is not None:
        signature = compute_signature(
            SECRET, timestamp, body, query=query, idempotency_key=idempotency_key
        )
    else:
        signature = compute_signature(SECRET, timestamp, body)
    headers = {
        "Authorization": f"Bearer {KEY}",
        "Content-Type": "message/rfc822",
        "X-Triage-Timestamp": timestamp,
        "X-Triage-Signature": signature,
    }
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return headers


TAMPERED: list[tuple[str, dict[str, str | None], str | None]] = [
    ("another customer", {"customer_id": "victim"}, None),
    ("another tier", {"customer_tier": "vip"}, None),
    ("another language", {"language": "de"}, None),
    ("a parameter dropped", {"language": None}, None),
    ("a parameter added", {"extra": "1"}, None),
    ("another Idempotency-Key", {}, "key-2"),
    ("the Idempotency-Key dropped", {}, ""),
]


async def test_a_changed_parameter_or_idempotency_key_breaks_the_signature(
    signed: httpx.AsyncClient, kafka: KafkaSettings, topic: str
) -> None:
    query = urlencode(QUERY)
    headers = _headers(query, "key-1")
    for what, change, key in TAMPERED:
        params = {k: v for k, v in {**QUERY, **change}.items() if v is not None}
        sent = dict(headers)
        if key == "":
            del sent["Idempotency-Key"]
        elif key is not None:
            sent["Idempotency-Key"] = key
        response = await signed.post(
            f"/v1/feedback/email?{urlencode(params)}", content=EMAIL, headers=sent
        )
        assert response.status_code == 401, (what, response.text)
    accepted = await signed.post(f"/v1/feedback/email?{query}", content=EMAIL, headers=headers)
    assert accepted.status_code == 202, accepted.text
    (record,) = await read_records(kafka, topic, expected=1, settle_s=0.5)
    event = record.json()
    assert event["customer"]["id"] == "cust-42"
    assert event["customer"]["tier"] == "premium"
    assert event["source"]["event_id"] == "key-1"


async def test_parameters_cannot_be_added_to_a_request_signed_without_them(
    signed: httpx.AsyncClient,
) -> None:
    headers = _headers("", None)
    for sneaked in ("customer_id=victim", "customer_tier=vip"):
        response = await signed.post(
            f"/v1/feedback/email?{sneaked}", content=EMAIL, headers=headers
        )
        assert response.status_code == 401, (sneaked, response.text)
    with_key = {**headers, "Idempotency-Key": "fresh-event"}
    response = await signed.post("/v1/feedback/email", content=EMAIL, headers=with_key)
    assert response.status_code == 401, response.text
    plain = await signed.post("/v1/feedback/email", content=EMAIL, headers=headers)
    assert plain.status_code == 202, "a body-only signature still works without parameters"


def test_the_two_forms_of_the_signed_message_never_collide() -> None:
    """A body that begins like the parameters of the extended form signs differently."""
    plain = compute_signature(SECRET, "1700000000", b"customer_id=victim\n\nbody")
    extended = compute_signature(
        SECRET, "1700000000", b"body", query="customer_id=victim", idempotency_key=""
    )
    assert plain != extended
    assert compute_signature(SECRET, "1", b"x") == compute_signature(
        SECRET, "1", b"x", query="", idempotency_key=None
    )
