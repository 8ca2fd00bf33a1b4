"""Rate limiting per API key: the token bucket, and the service refusing one key with 429 while
others go on."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.kafka import KafkaSettings
from services.ingest.auth import compute_signature, generate_key, hash_key
from services.ingest.ratelimit import Bucket, RateLimiter, retry_after_header, take
from services.ingest.settings import IngestSettings
from tests.support.kafka import read_records
from tests.support.problems import assert_problem

BUSY_KEY = generate_key()
QUIET_KEY = generate_key()
SIGNED_KEY = generate_key()
SECRET = "rate-limit-signing-secret"
KEYS = {"busy": hash_key(BUSY_KEY), "quiet": hash_key(QUIET_KEY), "signed": hash_key(SIGNED_KEY)}


def test_a_full_bucket_allows_a_burst_then_the_rate() -> None:
    now = 100.0
    limiter = RateLimiter(rate_per_s=2, burst=3, clock=lambda: now)
    assert [limiter.acquire("p") for _ in range(3)] == [0, 0, 0]
    assert limiter.acquire("p") == pytest.approx(0.5)
    assert limiter.acquire("other") == 0, "each platform has its own bucket"
    now += 0.5
    assert limiter.acquire("p") == 0
    assert limiter.acquire("p") == pytest.approx(0.5)
    now += 60
    assert [limiter.acquire("p") for _ in range(4)][:3] == [0, 0, 0], "never above the burst"
    assert limiter.acquire("p") > 0


def test_a_refusal_takes_no_token() -> None:
    bucket = Bucket(0.25, 10.0)
    after, wait = take(bucket, now=10.0, rate=1, burst=5)
    assert wait == pytest.approx(0.75)
    assert after.tokens == pytest.approx(0.25)
    after, wait = take(after, now=10.75, rate=1, burst=5)
    assert wait == 0


def test_a_clock_going_back_gives_nothing() -> None:
    after, wait = take(Bucket(0.0, 10.0), now=5.0, rate=100, burst=5)
    assert wait > 0
    assert after.tokens == 0


@pytest.mark.parametrize(("wait", "header"), [(0.001, "1"), (1.0, "1"), (1.2, "2"), (30, "30")])
def test_retry_after_is_whole_seconds_at_least_one(wait: float, header: str) -> None:
    assert retry_after_header(wait) == header


@settings(max_examples=300, deadline=None)
@given(
    rate=st.floats(min_value=0.01, max_value=1000),
    burst=st.integers(min_value=1, max_value=1000),
    gaps=st.lists(st.floats(min_value=0, max_value=5), min_size=1, max_size=200),
)
def test_never_more_than_burst_plus_rate_times_time(
    rate: float, burst: int, gaps: list[float]
) -> None:
    bucket, now, allowed = Bucket(float(burst), 0.0), 0.0, 0
    for gap in gaps:
        now += gap
        bucket, wait = take(bucket, now=now, rate=rate, burst=burst)
        allowed += wait == 0
        assert 0 <= bucket.tokens <= burst
        assert wait >= 0
    assert allowed <= burst + rate * now + 1e-6


def test_settings_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = IngestSettings()
    assert (defaults.rate_limit_per_s, defaults.rate_limit_burst) == (200, 400)
    monkeypatch.setenv("TRIAGE_INGEST_RATE_LIMIT_PER_S", "0.5")
    monkeypatch.setenv("TRIAGE_INGEST_RATE_LIMIT_BURST", "7")
    configured = IngestSettings()
    assert (configured.rate_limit_per_s, configured.rate_limit_burst) == (0.5, 7)
    monkeypatch.setenv("TRIAGE_INGEST_RATE_LIMIT_PER_S", "0")
    with pytest.raises(ValueError, match="rate_limit_per_s"):
        IngestSettings()


def _event(n: int) -> dict[str, Any]:
    return {"id": f"rl-{n}", "channel": "web", "customer": {"id": "c"}, "text": "hello"}


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _signed(body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time()))
    return {
        **_bearer(SIGNED_KEY),
        "Content-Type": "application/json",
        "X-Triage-Timestamp": timestamp,
        "X-Triage-Signature": compute_signature(SECRET, timestamp, body),
    }


async def test_one_key_is_refused_while_another_goes_on(
    ingest_factory: Any, kafka: KafkaSettings, topic: str
) -> None:
    async with ingest_factory(
        environment="production",
        api_keys=KEYS,
        hmac_secrets={"signed": SECRET},
        rate_limit_per_s=0.2,
        rate_limit_burst=3,
    ) as client:
        # Refused requests (no key, wrong key, a signed platform without a signature) take
        # nothing from any bucket.
        for headers in ({}, _bearer("tk_wrong"), _bearer(SIGNED_KEY)):
            for _ in range(5):
                response = await client.post("/v1/feedback", json=_event(0), headers=headers)
                assert response.status_code == 401
        busy = [
            await client.post("/v1/feedback", json=_event(n), headers=_bearer(BUSY_KEY))
            for n in range(6)
        ]
        assert [r.status_code for r in busy] == [202, 202, 202, 429, 429, 429]
        refused = busy[3]
        assert assert_problem(refused, 429, "rate-limited")["detail"].startswith(
            "too many requests"
        )
        assert 1 <= int(refused.headers["Retry-After"]) <= 5
        # Checked before the body is read: even a malformed body gets 429, not 422.
        malformed = await client.post(
            "/v1/feedback/chat",
            content=b"{not json",
            headers={**_bearer(BUSY_KEY), "Content-Type": "application/json"},
        )
        assert malformed.status_code == 429
        quiet = [
            await client.post("/v1/feedback", json=_event(100 + n), headers=_bearer(QUIET_KEY))
            for n in range(3)
        ]
        assert [r.status_code for r in quiet] == [202, 202, 202]

        # A signed request refused for its rate may be sent again as it was, once there is room.
        for n in range(3):
            body = json.dumps(_event(300 + n)).encode()
            response = await client.post("/v1/feedback", content=body, headers=_signed(body))
            assert response.status_code == 202
        body = json.dumps(_event(200)).encode()
        signed = _signed(body)
        statuses = [(await client.post("/v1/feedback", content=body, headers=signed)).status_code]
        app = client.app
        app.state.ingest.limiter.rate_per_s = 1000.0
        # A 429 is answered before the body is read, in well under the millisecond that a new
        # token takes at this rate.
        await asyncio.sleep(0.01)
        statuses.append(
            (await client.post("/v1/feedback", content=body, headers=signed)).status_code
        )
        statuses.append(
            (await client.post("/v1/feedback", content=body, headers=signed)).status_code
        )
        assert statuses == [429, 202, 401], "refused for its rate, accepted, then a replay"

        metrics = (await client.get("/metrics")).text
    assert 'triage_ingest_rate_limited_total{platform="busy"} 4.0' in metrics
    assert 'triage_ingest_rate_limited_total{platform="signed"} 1.0' in metrics
    assert 'triage_ingest_rate_limited_total{platform="quiet"}' not in metrics
    assert 'triage_ingest_requests_total{channel="unknown",status="429"}' in metrics
    accepted = await read_records(kafka, topic, expected=10, settle_s=0.5)
    assert len(accepted) == 10
