"""The pure parts of webhook delivery: signing, backoff, filters, the subscriptions file."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.common.cases import CaseEventType
from services.webhooks.delivery import (
    backoff_s,
    next_wait_s,
    outcome_of,
    retry_after_s,
    signed_headers,
)
from services.webhooks.subscriptions import (
    WebhooksConfigError,
    default_id,
    new_secret,
    parse_subscriptions,
    secret_bytes,
)
from tests.webhooks.support import OTHER_SECRET, SECRET, case_event

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_signature_verifies_with_the_standard_webhooks_library() -> None:
    body = case_event(uuid.uuid4(), 1).model_dump_json().encode()
    now = datetime.now(UTC)
    headers = signed_headers(Webhook(SECRET), webhook_id="evt-1", body=body, now=now)
    assert headers["webhook-id"] == "evt-1"
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(SECRET).verify(body, headers)["version"] == 1
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER_SECRET).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body + b" ", headers)
    stale = signed_headers(
        Webhook(SECRET), webhook_id="evt-1", body=body, now=now - timedelta(hours=1)
    )
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(body, stale)


def test_backoff_doubles_up_to_the_ceiling() -> None:
    waits = [backoff_s(n, initial_s=1, max_s=60, jitter=0.999999) for n in range(1, 10)]
    assert [round(w) for w in waits] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert backoff_s(3, initial_s=1, max_s=60, jitter=0.0) == 2.0  # half of 4: jitter's floor


@given(st.integers(1, 10_000), st.floats(0, 1, exclude_max=True))
def test_backoff_stays_within_its_bounds(attempt: int, jitter: float) -> None:
    wait = backoff_s(attempt, initial_s=0.5, max_s=300, jitter=jitter)
    ceiling = min(300, 0.5 * 2 ** min(attempt - 1, 62))
    assert ceiling / 2 <= wait <= ceiling


def test_retry_after_is_honoured_up_to_the_longest_wait() -> None:
    assert retry_after_s("30", now=NOW) == 30
    assert retry_after_s("Mon, 02 Mar 2026 09:01:00 GMT", now=NOW) == 60
    assert retry_after_s("Mon, 02 Mar 2026 08:00:00 GMT", now=NOW) == 0
    assert retry_after_s("soon", now=NOW) is None
    assert retry_after_s(None, now=NOW) is None
    assert next_wait_s(1, retry_after=30, initial_s=1, max_s=300, jitter=0) == 30
    assert next_wait_s(1, retry_after=9999, initial_s=1, max_s=300, jitter=0) == 300
    assert next_wait_s(1, retry_after=None, initial_s=1, max_s=300, jitter=0) == 0.5


@pytest.mark.parametrize(
    ("status", "ok"),
    [(200, True), (204, True), (299, True), (301, False), (410, False), (503, False)],
)
def test_only_2xx_accepts(status: int, ok: bool) -> None:
    assert outcome_of(status)[0] is ok


def _subs(**fields: object) -> list[object]:
    return [{"url": "https://helpdesk.example/hooks", "secret": SECRET, **fields}]


def test_the_minimal_form_takes_every_event() -> None:
    (sub,) = parse_subscriptions({"subscriptions": _subs(events=["*"])}, where="f")
    assert sub.id == default_id("https://helpdesk.example/hooks")
    for kind in CaseEventType:
        assert sub.wants(case_event(uuid.uuid4(), 1, kind, platform=None))
    assert SECRET not in repr(sub)


def test_event_and_platform_filters() -> None:
    (sub,) = parse_subscriptions(
        {"subscriptions": _subs(id="hd", events=["assigned", "resolved"], platforms=["shop"])},
        where="f",
    )
    case = uuid.uuid4()
    assert sub.wants(case_event(case, 1, CaseEventType.RESOLVED, platform="shop"))
    assert sub.wants(case_event(case, 1, CaseEventType.ASSIGNED, platform="shop"))
    assert not sub.wants(case_event(case, 1, CaseEventType.CREATED, platform="shop"))
    assert not sub.wants(case_event(case, 1, CaseEventType.RESOLVED, platform="helpdesk"))
    assert not sub.wants(case_event(case, 1, CaseEventType.RESOLVED, platform=None))


def test_secret_from_the_environment() -> None:
    (sub,) = parse_subscriptions(
        {"subscriptions": [{"url": "https://a.test/", "secret_env": "S", "events": ["*"]}]},
        where="f",
        environ={"S": OTHER_SECRET},
    )
    assert sub.secret.get_secret_value() == OTHER_SECRET
    with pytest.raises(WebhooksConfigError, match="S: the secret must decode") as raised:
        parse_subscriptions(
            {"subscriptions": [{"url": "https://a.test/", "secret_env": "S", "events": ["*"]}]},
            where="f",
            environ={"S": "whsec_c2hvcnQ="},
        )
    assert "c2hvcnQ" not in str(raised.value)


def test_an_empty_file_has_no_subscriptions() -> None:
    assert parse_subscriptions(None, where="f") == ()
    assert parse_subscriptions({"subscriptions": []}, where="f") == ()


def test_secrets_follow_the_standard_form() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(secret_bytes(secret)) == 32
    assert secret_bytes(secret.removeprefix("whsec_")) == secret_bytes(secret)
    Webhook(secret)  # the reference library takes it
    for bad in ("whsec_", "whsec_!!!!", "whsec_" + "A" * 200):
        with pytest.raises(ValueError, match="secret must"):
            secret_bytes(bad)
