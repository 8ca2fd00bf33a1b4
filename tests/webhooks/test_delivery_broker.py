"""The webhook worker on the real broker, posting to real HTTP receivers started by the tests."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.common.broker import free_port
from services.common.cases import CaseEvent, CaseEventType
from services.common.kafka import KafkaSettings
from services.common.topics import webhooks_dlq
from services.webhooks.app import create_service, serve
from services.webhooks.models import WebhookDeadLetter
from services.webhooks.settings import WebhooksSettings
from services.webhooks.subscriptions import Subscription, parse_subscriptions
from services.webhooks.worker import WebhookService
from tests.support.kafka import read_records
from tests.support.logscan import Sent
from tests.webhooks.support import (
    OTHER_SECRET,
    SECRET,
    Received,
    Receiver,
    case_event,
    publish,
    publish_raw,
)

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(autouse=True)
def secrets_never_logged(logs_hold_no_personal_data: Sent) -> None:
    logs_hold_no_personal_data.secrets.update({SECRET, OTHER_SECRET})


def subscriptions(*entries: dict[str, Any]) -> tuple[Subscription, ...]:
    return parse_subscriptions({"subscriptions": list(entries)}, where="test")


@contextlib.asynccontextmanager
async def running(
    kafka: KafkaSettings, subs: Sequence[Subscription], **overrides: Any
) -> AsyncIterator[WebhookService]:
    """The webhook worker in this process, ready; stopped (offsets committed) on exit."""
    options: dict[str, Any] = {
        "port": free_port(),
        "start_from": "earliest",
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "timeout_s": 2.0,
        "commit_interval_s": 0.1,
    }
    options.update(overrides)
    service = create_service(WebhooksSettings(**options), kafka, subs)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(service, stop=stop))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not service.ready:
        if task.done():
            task.result()
        assert loop.time() < deadline, "the webhook worker did not become ready"
        await asyncio.sleep(0.05)
    try:
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


@contextlib.asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[Receiver]:
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


def first_acceptances(received: list[Received]) -> list[dict[str, Any]]:
    """Each event as first accepted, in arrival order (later repeats dropped by webhook-id,
    as a receiver does)."""
    seen: set[str] = set()
    events = []
    for request in received:
        webhook_id = request.headers["webhook-id"]
        if webhook_id not in seen:
            seen.add(webhook_id)
            events.append(request.event)
    return events


def versions_by_case(events: list[dict[str, Any]]) -> dict[str, list[int]]:
    by_case: dict[str, list[int]] = {}
    for event in events:
        by_case.setdefault(event["case_id"], []).append(event["version"])
    return by_case


def interleaved(cases: int, versions: int, **kwargs: Any) -> list[CaseEvent]:
    ids = [uuid.uuid4() for _ in range(cases)]
    return [case_event(c, v, **kwargs) for v in range(1, versions + 1) for c in ids]


def metric(service: WebhookService, name: str, **labels: str) -> float:
    value = service.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else float(value)


async def test_signed_deliveries_filtered_and_in_order_per_case(kafka: KafkaSettings) -> None:
    everything = Receiver()
    resolved_only = Receiver()
    subs = subscriptions(
        {"id": "all", "url": everything.url, "secret": SECRET, "events": ["*"]},
        {
            "id": "shop-resolved",
            "url": resolved_only.url,
            "secret": OTHER_SECRET,
            "events": ["resolved"],
            "platforms": ["shop"],
        },
    )
    helpdesk_cases = interleaved(4, 4)  # created x4 versions, platform helpdesk
    shop_case = uuid.uuid4()
    shop_events = [
        case_event(shop_case, 1, CaseEventType.CREATED, platform="shop"),
        case_event(shop_case, 2, CaseEventType.RESOLVED, platform="shop"),
    ]
    other_resolved = case_event(uuid.uuid4(), 1, CaseEventType.RESOLVED, platform="helpdesk")
    published = [*helpdesk_cases, *shop_events, other_resolved]
    async with (
        receiving(everything),
        receiving(resolved_only),
        running(kafka, subs) as service,
    ):
        await publish(kafka, published)
        received = await everything.wait_accepted(len(published))
        await resolved_only.wait_accepted(1)
        await asyncio.sleep(0.5)  # time for any delivery that should not happen
        port = service.settings.port
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            health = await http.get("/healthz")
            ready = await http.get("/readyz")
            exposition = (await http.get("/metrics")).text

    # Every request verifies with the subscription's secret, by the reference library.
    verifier = Webhook(SECRET)
    by_id = {str(e.event_id): e for e in published}
    for request in received:
        payload = verifier.verify(request.body, request.headers)
        event = by_id[request.headers["webhook-id"]]
        assert payload == event.model_dump(mode="json")
        assert payload["type"] == event.type.value
        assert request.headers["content-type"] == "application/json"
    assert {r.headers["webhook-id"] for r in received} == set(by_id)
    # One case's events arrive in the order of its versions.
    for versions in versions_by_case(first_acceptances(received)).values():
        assert versions == sorted(versions)
    # The filtered subscription got the one resolved event of a shop case, signed with its
    # own secret (the other secret does not verify it).
    (only,) = resolved_only.requests
    assert only.headers["webhook-id"] == str(shop_events[1].event_id)
    assert Webhook(OTHER_SECRET).verify(only.body, only.headers)["type"] == "resolved"
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(only.body, only.headers)

    assert health.status_code == 200
    assert ready.status_code == 200
    assert f'triage_webhook_deliveries_total{{subscription="all"}} {len(published)}.0' in (
        exposition
    )
    assert 'triage_webhook_deliveries_total{subscription="shop-resolved"} 1.0' in exposition
    assert 'triage_webhook_lag_records{subscription="all"} 0.0' in exposition
    assert "process_resident_memory_bytes" in exposition
    assert SECRET not in exposition


async def test_failing_receiver_that_recovers_gets_everything_in_order(
    kafka: KafkaSettings,
) -> None:
    events = interleaved(3, 4)
    hangs_once = str(events[4].event_id)

    def flaky(headers: dict[str, str], seen: int) -> int | None:
        if headers["webhook-id"] == hangs_once and seen == 0:
            return None  # the first attempt times out
        return 503 if seen < 2 else 200  # the first two answers of each event fail

    receiver = Receiver(behaviour=flaky)
    subs = subscriptions({"id": "flaky", "url": receiver.url, "secret": SECRET, "events": ["*"]})
    async with receiving(receiver), running(kafka, subs, timeout_s=0.5) as service:
        await publish(kafka, events)
        received = await receiver.wait_accepted(len(events), timeout_s=30)
        await asyncio.sleep(0.3)

    accepted = first_acceptances(received)
    assert {e["event_id"] for e in accepted} == {str(e.event_id) for e in events}
    for versions in versions_by_case(accepted).values():
        assert versions == sorted(versions)
    # A later version of a case is never even attempted before the earlier one was accepted.
    accepted_at: dict[str, int] = {}
    for n, request in enumerate(receiver.requests):
        if request.status == 200:
            accepted_at.setdefault(request.headers["webhook-id"], n)
    for n, request in enumerate(receiver.requests):
        for before in events:
            same_case = str(before.case_id) == request.event["case_id"]
            if same_case and before.version < request.event["version"]:
                assert accepted_at[str(before.event_id)] < n
    # Each attempt is signed afresh and verifies.
    for request in receiver.requests:
        Webhook(SECRET).verify(request.body, request.headers)
    assert metric(service, "triage_webhook_deliveries_total", subscription="flaky") == len(events)
    # Two failures per event: two 503s, or for one of them a timeout and a 503.
    failures = "triage_webhook_delivery_failures_total"
    http_status = metric(service, failures, subscription="flaky", error_type="http_status")
    assert http_status == 2 * len(events) - 1
    assert metric(service, failures, subscription="flaky", error_type="timeout") == 1
    assert metric(service, "triage_webhook_retries_total", subscription="flaky") == 2 * len(events)
    assert metric(service, "triage_webhook_dead_letters_total", subscription="flaky") == 0


async def test_receiver_that_never_recovers_ends_in_the_dead_letter_topic(
    kafka: KafkaSettings,
) -> None:
    down = Receiver(behaviour=lambda headers, seen: 500)
    up = Receiver()
    subs = subscriptions(
        {"id": "down", "url": down.url, "secret": SECRET, "events": ["*"]},
        {"id": "up", "url": up.url, "secret": OTHER_SECRET, "events": ["*"]},
    )
    case_id = uuid.uuid4()
    events = [case_event(case_id, v) for v in (1, 2, 3)] + [case_event(uuid.uuid4(), 1)]
    attempts = 3
    async with (
        receiving(down),
        receiving(up),
        running(
            kafka, subs, max_attempts=attempts, backoff_initial_s=0.6, backoff_max_s=0.6
        ) as service,
    ):
        await publish(kafka, events)
        await publish_raw(kafka, b"{not a case event", key=b"junk")
        # The healthy subscriber is not held up by the failing one's retries.
        await up.wait_accepted(len(events), timeout_s=10)
        assert (
            metric(
                service,
                "triage_webhook_dead_letters_total",
                subscription="down",
                error_type="http_status",
            )
            == 0
        )
        dlq = await read_records(
            kafka, kafka.topic(webhooks_dlq), expected=len(events) + 2, timeout_s=30
        )

    letters = [WebhookDeadLetter.model_validate_json(r.value) for r in dlq]
    for record in dlq:
        assert record.headers["event_type"] == b"WebhookDeadLetter"
        assert record.headers["schema_version"] == b"1"
    unreadable = [letter for letter in letters if letter.error_type == "unreadable"]
    assert {letter.subscription for letter in unreadable} == {"down", "up"}
    assert all(base64.b64decode(u.value) == b"{not a case event" for u in unreadable)
    failed = [letter for letter in letters if letter.error_type != "unreadable"]
    assert len(failed) == len(events)
    by_id = {str(e.event_id): e for e in events}
    for letter in failed:
        assert letter.subscription == "down"
        assert letter.attempts == attempts
        assert letter.last_status == 500
        assert letter.error_type == "http_status"
        event = by_id[letter.webhook_id or ""]
        assert letter.case_id == event.case_id
        assert letter.case_event_type == event.type
        assert base64.b64decode(letter.value) == event.model_dump_json().encode()
    # Dead-lettered in the case's order, after exactly the retry budget each.
    same_case = [letter.webhook_id for letter in failed if letter.case_id == case_id]
    assert same_case == [str(e.event_id) for e in events[:3]]
    per_event: dict[str, int] = {}
    for request in down.requests:
        per_event[request.headers["webhook-id"]] = (
            per_event.get(request.headers["webhook-id"], 0) + 1
        )
    assert per_event == {str(e.event_id): attempts for e in events}
    assert {r.headers["webhook-id"] for r in up.accepted()} == set(by_id)


async def test_restart_resumes_where_it_stopped_without_losing_events(
    kafka: KafkaSettings,
) -> None:
    case_id = uuid.uuid4()
    events = [case_event(case_id, v) for v in range(1, 9)]
    stuck = str(events[2].event_id)
    hanging = True

    def hang_on_third(headers: dict[str, str], seen: int) -> int | None:
        return None if hanging and headers["webhook-id"] == stuck else 200

    receiver = Receiver(behaviour=hang_on_third)
    subs = subscriptions({"id": "crm", "url": receiver.url, "secret": SECRET, "events": ["*"]})
    async with receiving(receiver):
        async with running(kafka, subs, timeout_s=60) as service:
            await publish(kafka, events[:5])
            await receiver.wait_accepted(2)
            await asyncio.sleep(0.5)  # the third is in flight, the receiver never answers
            assert metric(service, "triage_webhook_deliveries_total", subscription="crm") == 2
        # Stopped mid-delivery; more events arrive meanwhile; the receiver is fixed.
        await publish(kafka, events[5:])
        hanging = False
        # 'latest' applies to a new subscription only: this one resumes where it stopped.
        async with running(kafka, subs, start_from="latest"):
            received = await receiver.wait_accepted(len(events), timeout_s=30)

    accepted = first_acceptances(received)
    assert [e["version"] for e in accepted] == [e.version for e in events]


async def test_without_subscriptions_the_worker_idles_ready(kafka: KafkaSettings) -> None:
    # What `triage up` runs when TRIAGE_WEBHOOKS_FILE is not set.
    async with running(kafka, ()) as service:
        await publish(kafka, [case_event(uuid.uuid4(), 1)])
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.settings.port}") as http:
            ready = await http.get("/readyz")
            exposition = (await http.get("/metrics")).text
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "subscriptions": 0}
    assert "triage_webhook_deliveries_total" in exposition  # declared, with no series yet
    assert "triage_webhook_deliveries_total{" not in exposition


async def test_not_ready_while_the_broker_cannot_be_reached() -> None:
    kafka = KafkaSettings(bootstrap=f"127.0.0.1:{free_port()}")  # nothing listens there
    receiver = Receiver()
    subs = subscriptions({"url": receiver.url, "secret": SECRET, "events": ["*"]})
    service = create_service(WebhooksSettings(port=free_port()), kafka, subs)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(service, stop=stop))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.settings.port}") as http:
            for _ in range(100):
                try:
                    health = await http.get("/healthz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            ready = await http.get("/readyz")
            await asyncio.sleep(2.5)  # past a retry of the start
            still = await http.get("/readyz")
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    assert health.status_code == 200
    assert ready.status_code == 503
    assert still.status_code == 503
