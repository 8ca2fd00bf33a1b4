"""``triage webhooks`` as a user runs it: clear errors for a bad subscriptions file, and a
worker killed mid-stream that resumes without losing an event."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from services.cli import main
from services.common.broker import free_port
from services.common.kafka import KafkaSettings
from tests.support.logscan import Sent
from tests.support.process import ServiceProcess
from tests.webhooks.support import SECRET, Receiver, case_event, publish


@pytest.fixture(autouse=True)
def secrets_never_logged(logs_hold_no_personal_data: Sent) -> None:
    logs_hold_no_personal_data.secrets.add(SECRET)


def run_with_file(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "webhooks.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(
        main,
        ["webhooks", "--port", str(free_port())],
        env={"TRIAGE_WEBHOOKS_FILE": str(path), "TRIAGE_WEBHOOKS_SECRET_ENV_UNSET": ""},
    )
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "subscriptions:\n  - url: https://example.test/h\n    secret: whsec_abc\n"
            "    events: ['*']\n",
            "subscriptions.0: Value error, the secret must decode to 24-64 bytes, not 2",
        ),
        (
            f"subscriptions:\n  - url: not a url\n    secret: {SECRET}\n    events: ['*']\n",
            "subscriptions.0.url: Input should be a valid URL",
        ),
        (
            f"subscriptions:\n  - url: https://example.test/h\n    secret: {SECRET}\n"
            "    events: [created, shipped]\n",
            "subscriptions.0.events: Value error, unknown event type(s) 'shipped'",
        ),
        (
            "subscriptions:\n  - url: https://example.test/h\n    secret_env: NOT_SET_ANYWHERE\n"
            "    events: ['*']\n",
            "subscriptions.0.secret_env: environment variable NOT_SET_ANYWHERE is not set",
        ),
        (
            f"subscriptions:\n  - url: https://example.test/h\n    events: ['*']\n"
            f"    secret: {SECRET}\n    secret_env: X\n",
            "give exactly one of 'secret' and 'secret_env'",
        ),
        (
            f"subscriptions:\n  - {{id: a, url: 'https://a.test/', secret: {SECRET}, "
            f"events: ['*']}}\n  - {{id: a, url: 'https://b.test/', secret: {SECRET}, "
            "events: ['*']}\n",
            "subscriptions.1.id: 'a' is used twice",
        ),
        (
            f"subscriptions:\n  - url: https://example.test/h\n    secret: {SECRET}\n"
            "    events: ['*']\n    filter: x\n",
            "subscriptions.0.filter: Extra inputs are not permitted",
        ),
        (
            f"subscriptions: [{{url: https://example.test/h, secret: {SECRET}\n",
            "not valid YAML",
        ),
        ("- just a list\n", "file: Input should be a valid dictionary"),
    ],
)
def test_a_bad_subscriptions_file_is_refused_clearly(
    tmp_path: Path, text: str, expected: str
) -> None:
    code, output = run_with_file(tmp_path, text)
    assert code == 1
    assert expected in output
    assert str(tmp_path / "webhooks.yaml") in output
    assert SECRET not in output
    assert SECRET.removeprefix("whsec_") not in output


def test_a_missing_subscriptions_file_is_named(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["webhooks", "--port", str(free_port())],
        env={"TRIAGE_WEBHOOKS_FILE": str(tmp_path / "absent.yaml")},
    )
    assert result.exit_code == 1
    assert f"cannot read subscriptions file {tmp_path / 'absent.yaml'}" in result.output


def test_webhook_secret_makes_a_usable_secret() -> None:
    from services.webhooks.subscriptions import secret_bytes

    result = CliRunner().invoke(main, ["webhook-secret"])
    assert result.exit_code == 0
    secret = result.output.strip()
    assert secret.startswith("whsec_")
    assert len(secret_bytes(secret)) == 32


@pytest.mark.timeout(120)
async def test_killed_worker_resumes_without_losing_events(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    receiver = Receiver()
    await receiver.start()
    subscriptions = tmp_path / "webhooks.yaml"
    subscriptions.write_text(
        yaml.safe_dump(
            {"subscriptions": [{"url": receiver.url, "secret_env": "CRM_SECRET", "events": ["*"]}]}
        )
    )
    env = {
        **os.environ,
        "TRIAGE_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "TRIAGE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "TRIAGE_WEBHOOKS_FILE": str(subscriptions),
        "TRIAGE_WEBHOOKS_START_FROM": "earliest",
        "CRM_SECRET": SECRET,
    }
    worker = ServiceProcess("webhooks", env, tmp_path)
    case_id = uuid.uuid4()
    events = [case_event(case_id, v) for v in range(1, 11)]
    try:
        worker.start()
        await asyncio.to_thread(worker.wait_ready)
        await publish(kafka, events[:5])
        await receiver.wait_accepted(5)
        await asyncio.to_thread(worker.kill)  # SIGKILL: no clean stop, no last commit
        first_run = len(receiver.requests)
        await publish(kafka, events[5:])
        worker.start()
        await asyncio.to_thread(worker.wait_ready)
        received = await receiver.wait_accepted(len(events), timeout_s=30)
        metrics = await asyncio.to_thread(worker.metrics)
    finally:
        await asyncio.to_thread(worker.stop)
        await receiver.stop()

    ids = [r.headers["webhook-id"] for r in received]
    assert set(ids) == {str(e.event_id) for e in events}  # nothing lost
    # The restarted worker resumes at its last commit (repeats allowed) and keeps the order.
    versions = [r.event["version"] for r in received[first_run:]]
    assert versions == sorted(versions)
    assert versions[-1] == 10
    assert "triage_webhook_deliveries_total" in metrics
    log = worker.log.read_text()
    assert "subscription started" in log
    assert SECRET not in log
