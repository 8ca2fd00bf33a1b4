"""Who may post: API keys, signatures, development and production modes."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from services.common.kafka import KafkaSettings
from services.ingest.api import UNAUTHORIZED
from services.ingest.auth import (
    Authenticator,
    AuthFailure,
    AuthFailureReason,
    compute_signature,
    generate_key,
    hash_key,
)
from services.ingest.settings import DEV_API_KEY, IngestSettings
from tests.support.kafka import read_records
from tests.support.problems import assert_problem

ZENDESK_KEY = generate_key()
SIGNED_KEY = generate_key()
SECRET = "s3cret-signing-value"
KEYS = {"zendesk": hash_key(ZENDESK_KEY), "signed": hash_key(SIGNED_KEY)}
BODY = json.dumps(
    {"id": "a-1", "channel": "web", "customer": {"id": "c"}, "text": "hello"}
).encode()


def _signed_headers(body: bytes, *, ts: int | None = None, secret: str = SECRET) -> dict[str, str]:
    timestamp = str(int(time.time()) if ts is None else ts)
    return {
        "Authorization": f"Bearer {SIGNED_KEY}",
        "Content-Type": "application/json",
        "X-Triage-Timestamp": timestamp,
        "X-Triage-Signature": compute_signature(secret, timestamp, body),
    }


@pytest.fixture
async def secured(ingest_factory: Any) -> Any:
    async with ingest_factory(
        environment="production", api_keys=KEYS, hmac_secrets={"signed": SECRET}
    ) as client:
        yield client


MATRIX = [
    ("no credentials", {}, 401),
    ("basic scheme", {"Authorization": f"Basic {ZENDESK_KEY}"}, 401),
    ("empty bearer", {"Authorization": "Bearer "}, 401),
    ("wrong key", {"Authorization": "Bearer tk_not-a-real-key"}, 401),
    ("development key in production", {"Authorization": f"Bearer {DEV_API_KEY}"}, 401),
    ("the hash instead of the key", {"Authorization": f"Bearer {KEYS['zendesk']}"}, 401),
    ("signed platform without signature", {"Authorization": f"Bearer {SIGNED_KEY}"}, 401),
    ("valid key", {"Authorization": f"Bearer {ZENDESK_KEY}"}, 202),
    ("valid key, lower-case scheme", {"Authorization": f"bearer {ZENDESK_KEY}"}, 202),
]


@pytest.mark.parametrize(("headers", "status"), [m[1:] for m in MATRIX], ids=[m[0] for m in MATRIX])
async def test_api_key_matrix(
    secured: httpx.AsyncClient, headers: dict[str, str], status: int
) -> None:
    body = json.loads(BODY)
    body["id"] = f"matrix-{headers.get('Authorization', 'none')}"
    response = await secured.post("/v1/feedback", json=body, headers=headers)
    assert response.status_code == status, response.text
    if status == 401:
        problem = assert_problem(response, 401, None)
        assert problem["detail"] == UNAUTHORIZED
        assert "errors" not in problem
        assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_every_feedback_endpoint_requires_a_key(secured: httpx.AsyncClient) -> None:
    for path in (
        "/v1/feedback/email",
        "/v1/feedback/chat",
        "/v1/feedback/social",
        "/v1/feedback/batch",
    ):
        response = await secured.post(
            path, content=b"{}", headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 401, path
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await secured.get(path)).status_code == 200, path


async def test_signatures(secured: httpx.AsyncClient, kafka: KafkaSettings, topic: str) -> None:
    good = _signed_headers(BODY)
    assert (await secured.post("/v1/feedback", content=BODY, headers=good)).status_code == 202
    replay = await secured.post("/v1/feedback", content=BODY, headers=good)
    assert replay.status_code == 401
    stale = _signed_headers(BODY, ts=int(time.time()) - 301)
    assert (await secured.post("/v1/feedback", content=BODY, headers=stale)).status_code == 401
    future = _signed_headers(BODY, ts=int(time.time()) + 301)
    assert (await secured.post("/v1/feedback", content=BODY, headers=future)).status_code == 401
    wrong_secret = _signed_headers(BODY, secret="other")
    assert (
        await secured.post("/v1/feedback", content=BODY, headers=wrong_secret)
    ).status_code == 401
    tampered = _signed_headers(BODY)
    changed = BODY.replace(b"hello", b"HELLO")
    assert (
        await secured.post("/v1/feedback", content=changed, headers=tampered)
    ).status_code == 401
    # A fresh signature of the same body is a retry, not a replay: answered as a duplicate.
    time.sleep(1.05)
    retry = await secured.post("/v1/feedback", content=BODY, headers=_signed_headers(BODY))
    assert retry.status_code == 200
    assert len(await read_records(kafka, topic, expected=1, settle_s=0.5)) == 1
    metrics = (await secured.get("/metrics")).text
    assert 'triage_ingest_auth_failures_total{reason="replayed_signature"} 1.0' in metrics
    assert 'triage_ingest_auth_failures_total{reason="stale_signature"} 2.0' in metrics
    assert 'triage_ingest_auth_failures_total{reason="bad_signature"} 2.0' in metrics


def test_authenticator_unit() -> None:
    settings = IngestSettings(api_keys=KEYS, hmac_secrets={"signed": SECRET})
    auth = Authenticator(settings)
    assert auth.platform_for(f"Bearer {ZENDESK_KEY}") == "zendesk"
    with pytest.raises(AuthFailure) as failure:
        auth.platform_for(f"Bearer {DEV_API_KEY}")
    assert failure.value.reason is AuthFailureReason.INVALID_KEY
    now = 1_800_000_000
    sig = compute_signature(SECRET, str(now), b"x")
    auth.verify_signature("signed", b"x", timestamp=str(now), signature=sig, now=now + 10)
    with pytest.raises(AuthFailure) as failure:
        auth.verify_signature("signed", b"x", timestamp=str(now), signature=sig, now=now + 20)
    assert failure.value.reason is AuthFailureReason.REPLAYED_SIGNATURE
    # Once the signature is too old to be accepted anyway, it is forgotten.
    with pytest.raises(AuthFailure) as failure:
        auth.verify_signature("signed", b"x", timestamp=str(now), signature=sig, now=now + 400)
    assert failure.value.reason is AuthFailureReason.STALE_SIGNATURE
    with pytest.raises(AuthFailure) as failure:
        auth.verify_signature("signed", b"x", timestamp="12ab", signature=sig, now=now)
    assert failure.value.reason is AuthFailureReason.BAD_SIGNATURE
    # Platforms without a secret need no signature.
    auth.verify_signature("zendesk", b"x", timestamp=None, signature=None)


def test_development_key_only_in_development_without_keys() -> None:
    assert IngestSettings().development_key_enabled
    assert not IngestSettings(api_keys=KEYS).development_key_enabled
    dev_auth = Authenticator(IngestSettings())
    assert dev_auth.platform_for(f"Bearer {DEV_API_KEY}") == "dev"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"environment": "production"}, "at least one platform key in production"),
        ({"api_keys": {"zendesk": ZENDESK_KEY}}, "a hash, never the key itself"),
        ({"api_keys": {"Bad Name": KEYS["zendesk"]}}, "platform name"),
        ({"api_keys": KEYS, "hmac_secrets": {"other": "x"}}, "platforms without an API key"),
    ],
)
def test_settings_refuse_unsafe_configuration(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        IngestSettings(**settings)


def test_keys_and_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_ENV", "production")
    monkeypatch.setenv("TRIAGE_INGEST_API_KEYS", json.dumps(KEYS))
    monkeypatch.setenv("TRIAGE_INGEST_HMAC_SECRETS", json.dumps({"signed": SECRET}))
    settings = IngestSettings()
    assert settings.environment == "production"
    assert settings.api_keys == KEYS
    assert SECRET not in repr(settings)


ENDPOINTS = {
    "/v1/feedback": ("application/json", BODY),
    "/v1/feedback/email": (
        "message/rfc822",
        b"From: jane@example.com\r\nMessage-ID: <m-1@example.com>\r\n\r\nIt broke.\r\n",
    ),
    "/v1/feedback/chat": (
        "application/json",
        json.dumps(
            {"id": "ch-1", "customer": {"id": "c"}, "turns": [{"role": "customer", "text": "x"}]}
        ).encode(),
    ),
    "/v1/feedback/social": (
        "application/json",
        json.dumps(
            {"id": "so-1", "network": "x", "author": {"handle": "@a"}, "text": "x"}
        ).encode(),
    ),
    "/v1/feedback/batch": ("application/json", json.dumps({"items": [json.loads(BODY)]}).encode()),
}


def _refusals(media: str, body: bytes) -> dict[str, dict[str, str]]:
    now = int(time.time())
    signed = _signed_headers(body)
    return {
        "no credentials": {"Content-Type": media},
        "wrong key": {"Content-Type": media, "Authorization": "Bearer tk_wrong"},
        "development key": {"Content-Type": media, "Authorization": f"Bearer {DEV_API_KEY}"},
        "missing signature": {"Content-Type": media, "Authorization": f"Bearer {SIGNED_KEY}"},
        "expired signature": {**_signed_headers(body, ts=now - 400), "Content-Type": media},
        "signature from the future": {**_signed_headers(body, ts=now + 400), "Content-Type": media},
        "signature of another body": {**_signed_headers(body + b" "), "Content-Type": media},
        "signature with another secret": {
            **_signed_headers(body, secret="x"),
            "Content-Type": media,
        },
        "malformed timestamp": {**signed, "X-Triage-Timestamp": "soon", "Content-Type": media},
    }


@pytest.mark.parametrize("path", list(ENDPOINTS))
async def test_every_endpoint_refuses_every_kind_of_bad_credentials(
    secured: httpx.AsyncClient, kafka: KafkaSettings, topic: str, path: str
) -> None:
    media, body = ENDPOINTS[path]
    for what, headers in _refusals(media, body).items():
        response = await secured.post(path, content=body, headers=headers)
        assert response.status_code == 401, (what, response.text)
        # The same answer whatever was wrong: nothing is learnt about the credentials.
        assert assert_problem(response, 401, None) == {
            "type": "about:blank",
            "title": "Unauthorized",
            "status": 401,
            "detail": UNAUTHORIZED,
            "instance": path,
        }, what
    good = {**_signed_headers(body), "Content-Type": media}
    accepted = await secured.post(path, content=body, headers=good)
    assert accepted.status_code == 202, accepted.text
    replayed = await secured.post(path, content=body, headers=good)
    assert replayed.status_code == 401, "a signature is good for one request"
    assert len(await read_records(kafka, topic, expected=1, settle_s=0.5)) == 1
