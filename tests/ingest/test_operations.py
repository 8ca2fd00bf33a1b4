"""Broker outages, health, metrics, the OpenAPI document, and what the logs may contain."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.broker import EmbeddedBroker
from services.common.kafka import KafkaSettings
from services.common.logging import configure_logging
from services.common.topics import feedback_received
from services.ingest.app import create_app
from services.ingest.auth import compute_signature, generate_key, hash_key
from services.ingest.settings import IngestSettings
from tests.ingest.conftest import DEV_AUTH, running_ingest
from tests.support.kafka import read_records
from tests.support.problems import assert_problem

OPENAPI_PATH = Path(__file__).parents[2] / "docs" / "openapi" / "ingest.json"


def _event(source_id: str) -> dict[str, Any]:
    return {"id": source_id, "channel": "chat", "customer": {"id": "c-1"}, "text": "refund?"}


async def test_broker_outage_gives_503_and_recovers(own_broker: EmbeddedBroker) -> None:
    kafka = KafkaSettings(bootstrap=own_broker.bootstrap, topic_prefix="outage.")
    topic = kafka.topic(feedback_received)
    async with running_ingest(kafka, produce_timeout_s=1.0, retry_after_s=7) as client:
        assert (
            await client.post("/v1/feedback", json=_event("before"), headers=DEV_AUTH)
        ).status_code == 202
        own_broker.kill()
        response = await client.post("/v1/feedback", json=_event("during"), headers=DEV_AUTH)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "7"
        assert "retry" in assert_problem(response, 503, "broker-unavailable")["detail"]
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/healthz")).status_code == 200
        again = await client.post("/v1/feedback", json=_event("during"), headers=DEV_AUTH)
        assert again.status_code == 503, "a refused event must not count as accepted"
        batch = await client.post(
            "/v1/feedback/batch",
            json={"items": [_event("batch-during"), {"id": "bad"}]},
            headers=DEV_AUTH,
        )
        # A batch of which nothing was accepted is a problem too, with its per-item outcomes.
        problem = assert_problem(batch, 503, "broker-unavailable")
        assert batch.headers["Retry-After"] == "7"
        assert (problem["unavailable"], problem["invalid"], problem["accepted"]) == (1, 1, 0)
        assert [r["status"] for r in problem["results"]] == ["unavailable", "invalid"]
        metrics = (await client.get("/metrics")).text
        assert "triage_ingest_broker_up 0.0" in metrics

        own_broker.start()
        publisher = client.app.state.ingest.publisher  # type: ignore[attr-defined]
        assert await publisher.wait_ready(20)
        assert (await client.get("/readyz")).status_code == 200
        response = await client.post("/v1/feedback", json=_event("during"), headers=DEV_AUTH)
        assert response.status_code == 202
        response = await client.post("/v1/feedback", json=_event("after"), headers=DEV_AUTH)
        assert response.status_code == 202
    # The restarted broker keeps nothing from before; what it has is exactly what was accepted
    # after it came back, with nothing half-written from the outage.
    records = await read_records(kafka, topic, expected=2, settle_s=1.0)
    assert sorted(r.json()["source"]["event_id"] for r in records) == ["after", "during"]


async def test_a_signed_request_refused_in_an_outage_may_be_sent_again_unchanged(
    own_broker: EmbeddedBroker,
) -> None:
    """Nothing was accepted, so the platform's retry of the very same signed request must not
    be refused as a replay; once accepted, a replay is refused again."""
    kafka = KafkaSettings(bootstrap=own_broker.bootstrap, topic_prefix="signed-outage.")
    key = generate_key()
    secret = "outage-signing-secret"
    body = json.dumps(_event("signed-during")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
        "X-Triage-Timestamp": timestamp,
        "X-Triage-Signature": compute_signature(secret, timestamp, body),
    }
    async with running_ingest(
        kafka,
        environment="production",
        api_keys={"signed": hash_key(key)},
        hmac_secrets={"signed": secret},
        produce_timeout_s=1.0,
    ) as client:
        own_broker.kill()
        try:
            batch = json.dumps({"items": [_event("signed-during")]}).encode()
            for path, content in (("/v1/feedback", body), ("/v1/feedback/batch", batch)):
                signed = {
                    **headers,
                    "X-Triage-Signature": compute_signature(secret, timestamp, content),
                }
                first = await client.post(path, content=content, headers=signed)
                assert first.status_code == 503, first.text
                again = await client.post(path, content=content, headers=signed)
                assert again.status_code == 503, (
                    f"{path}: a retry after a 503 was refused as a replay"
                )
        finally:  # a stopped broker would hold the shutdown of ingest
            own_broker.start()
        publisher = client.app.state.ingest.publisher  # type: ignore[attr-defined]
        assert await publisher.wait_ready(20)
        accepted = await client.post("/v1/feedback", content=body, headers=headers)
        assert accepted.status_code == 202, accepted.text
        replayed = await client.post("/v1/feedback", content=body, headers=headers)
        assert replayed.status_code == 401, "an accepted signed request must not be replayable"
    records = await read_records(kafka, kafka.topic(feedback_received), expected=1, settle_s=1.0)
    assert [r.json()["source"]["event_id"] for r in records] == ["signed-during"]


async def test_starts_without_a_broker_and_becomes_ready(own_broker: EmbeddedBroker) -> None:
    kafka = KafkaSettings(bootstrap=own_broker.bootstrap, topic_prefix="late.")
    own_broker.stop()
    async with running_ingest(kafka, wait_ready=False, produce_timeout_s=1.0) as client:
        assert (await client.get("/readyz")).status_code == 503
        response = await client.post("/v1/feedback", json=_event("early"), headers=DEV_AUTH)
        assert response.status_code == 503
        own_broker.start()
        publisher = client.app.state.ingest.publisher  # type: ignore[attr-defined]
        assert await publisher.wait_ready(20)
        response = await client.post("/v1/feedback", json=_event("early"), headers=DEV_AUTH)
        assert response.status_code == 202


async def test_metrics(ingest: httpx.AsyncClient) -> None:
    await ingest.post("/v1/feedback", json=_event("m-1"), headers=DEV_AUTH)
    await ingest.post("/v1/feedback", json=_event("m-1"), headers=DEV_AUTH)
    await ingest.post("/v1/feedback", json={"channel": "chat"}, headers=DEV_AUTH)
    await ingest.post("/v1/feedback", json=_event("m-2"))
    await ingest.get("/v1/no-such-route/m-2")
    response = await ingest.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for line in (
        'triage_ingest_requests_total{channel="chat",status="202"} 1.0',
        'triage_ingest_requests_total{channel="chat",status="200"} 1.0',
        'triage_ingest_requests_total{channel="unknown",status="422"} 1.0',
        'triage_ingest_requests_total{channel="unknown",status="401"} 1.0',
        'triage_ingest_duplicates_total{channel="chat"} 1.0',
        'triage_ingest_events_total{channel="chat",outcome="accepted"} 1.0',
        'triage_ingest_auth_failures_total{reason="missing_credentials"} 1.0',
        "triage_ingest_broker_up 1.0",
    ):
        assert line in text, line
    assert "triage_ingest_produce_duration_seconds_count 1.0" in text
    assert 'triage_ingest_payload_bytes_count{channel="chat"} 2.0' in text
    # Conventions every Prometheus user looks for: request durations by route template and
    # status, the process and the runtime.
    for line in (
        'http_request_duration_seconds_count{handler="/v1/feedback",method="POST",'
        'status="202"} 1.0',
        'http_request_duration_seconds_count{handler="/v1/feedback",method="POST",'
        'status="401"} 1.0',
        'http_requests_total{handler="/v1/feedback",method="POST",status="422"} 1.0',
    ):
        assert line in text, line
    assert 'handler="/metrics"' not in text
    # A path no route knows is not a label value a caller can choose.
    assert 'http_requests_total{handler="none",method="GET",status="404"} 1.0' in text
    assert "no-such-route" not in text
    for family in ("process_resident_memory_bytes", "process_open_fds", "python_info"):
        assert f"\n{family}" in text, family


async def test_health(ingest: httpx.AsyncClient) -> None:
    assert (await ingest.get("/healthz")).json() == {"status": "ok", "broker": None}
    assert (await ingest.get("/readyz")).json() == {"status": "ok", "broker": "up"}


def test_committed_openapi_document_is_current() -> None:
    app = create_app(IngestSettings(), KafkaSettings())
    generated = app.openapi()
    committed = json.loads(OPENAPI_PATH.read_text())
    assert committed == generated, "regenerate with: python -m services.ingest.openapi"
    paths = generated["paths"]
    for path in (
        "/v1/feedback",
        "/v1/feedback/email",
        "/v1/feedback/chat",
        "/v1/feedback/social",
        "/v1/feedback/batch",
    ):
        assert "requestBody" in paths[path]["post"], path
        assert paths[path]["post"]["security"] == [{"apiKey": []}]
    assert set(paths["/v1/feedback"]["post"]["requestBody"]["content"]) == {
        "application/json",
        "application/cloudevents+json",
    }
    assert "FeedbackIn" in generated["components"]["schemas"]


async def test_logs_hold_no_personal_data(
    kafka: KafkaSettings, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level="DEBUG", fmt="json")
    secret_text = "my card 4111 was charged twice, call me"
    message = EmailMessage()
    message["From"] = "Private Person <private.person@example.org>"
    message["To"] = "help@acme.example"
    message["Subject"] = "charged twice"
    message.set_content(f"{secret_text} on +44 7700 900123")
    async with running_ingest(kafka) as client:
        headers = {**DEV_AUTH, "Content-Type": "message/rfc822"}
        response = await client.post(
            "/v1/feedback/email", content=message.as_bytes(), headers=headers
        )
        assert response.status_code == 202
        bad = await client.post(
            "/v1/feedback",
            json={"id": "x", "channel": "web", "text": secret_text},
            headers=DEV_AUTH,
        )
        assert bad.status_code == 422
        await asyncio.sleep(0.1)
    logging.getLogger().handlers[0].flush()
    output = capsys.readouterr().err + caplog.text
    assert "event accepted" in output
    for private in ("private.person@example.org", "Private Person", secret_text, "7700 900123"):
        assert private not in output
    configure_logging(level="INFO", fmt="console")
