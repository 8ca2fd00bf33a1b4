"""The console's stack: ingest, classifier, router and trends processes on the test broker, and
Debian's chromium driven by Playwright."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from playwright.async_api import Browser, async_playwright

from services.common.broker import EmbeddedBroker
from services.common.kafka import KafkaSettings, ensure_topics
from services.common.messages import Category, Channel
from services.common.topics import feedback_classified
from services.ingest.settings import DEV_API_KEY
from services.router.commands import ClassifiedIn
from services.router.roster import hash_token
from tests.support.debian import ensure_program
from tests.support.process import ServiceProcess

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ALL_CATEGORIES = [category.value for category in Category]
CHANNELS = {channel.value: 3 for channel in (Channel.EMAIL, Channel.CHAT, Channel.SOCIAL)}


def _agent(agent_id: str, name: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": agent_id,
        "name": name,
        "team": "care",
        "languages": ["en"],
        "channels": CHANNELS,
        "hostile": True,
        "presence": "available",
        "token_sha256": hash_token(f"token-{agent_id}"),
        **fields,
    }


# HELD_CATEGORY belongs to a team that holds unsure cases for review (the review lane's test):
# no other test's message is praise, and its one agent works the web channel, which no other
# test writes on, so she is free when the held case is released.
HELD_CATEGORY = Category.PRAISE.value
HELD_CHANNEL = Channel.WEB.value
# One team that takes every other category, so who is offered a case does not depend on its
# tags: Ana is the most proficient and is offered first, and may offer any remedy up to £150,
# more than any amount in these tests (the remedy a case needs follows its category).
ROSTER: dict[str, Any] = {
    "default_team": "care",
    "teams": [
        {
            "id": "care",
            "name": "Customer care",
            "categories": [c for c in ALL_CATEGORIES if c != HELD_CATEGORY],
        },
        {"id": "billing", "name": "Billing", "categories": []},
        {"id": "kudos", "name": "Kudos", "categories": [HELD_CATEGORY], "review": "hold"},
    ],
    "agents": [
        _agent(
            "ana",
            "Ana Ribeiro",
            skills=dict.fromkeys(ALL_CATEGORIES, 5),
            authority=dict.fromkeys(
                ("refund", "replacement", "goodwill_credit", "fee_waiver", "voucher"), 150
            ),
        ),
        _agent("ben", "Ben Okafor", skills=dict.fromkeys(ALL_CATEGORIES, 3)),
        _agent(
            "kate",
            "Kate Lindqvist",
            tier="supervisor",
            skills=dict.fromkeys(ALL_CATEGORIES, 2),
            authority={"refund": 5000},
            presence="away",
        ),
        _agent(
            "pia",
            "Pia Novak",
            team="kudos",
            channels={HELD_CHANNEL: 3},
            skills={HELD_CATEGORY: 4},
        ),
    ],
}
# The router sets an available agent away this long after their console closed: short, so the
# floor's "set away" list is seen within a test.
DISCONNECT_GRACE_S = 4
SLA = """
warning_share: 0.75
on_warning: [notify]
on_breach: [notify]
calendars:
  always: {timezone: UTC, always_open: true}
targets:
  "*":
    "*": {first_response: 2h, resolution: 1d, follow_up: 2d}
"""


def token(agent_id: str) -> str:
    return f"token-{agent_id}"


@dataclass
class Stack:
    """The running services and how to reach them."""

    kafka: KafkaSettings
    ingest: ServiceProcess
    router: ServiceProcess
    trends: ServiceProcess

    def api(self, agent_id: str) -> httpx.Client:
        """The agent API as this agent."""
        return httpx.Client(
            base_url=self.router.base,
            headers={"Authorization": f"Bearer {token(agent_id)}"},
            timeout=15,
        )

    def post_email(self, subject: str, body: str, *, sender: str) -> None:
        """Post a raw e-mail to ingest, as a mail platform would."""
        message = (
            f"From: {sender}\r\nTo: support@shop.example\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4()}@mail.example>\r\n"
            "Date: Mon, 23 Nov 2026 09:00:00 +0000\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{body}\r\n"
        ).encode()
        response = httpx.post(
            f"{self.ingest.base}/v1/feedback/email",
            content=message,
            headers={"Authorization": f"Bearer {DEV_API_KEY}", "Content-Type": "message/rfc822"},
            timeout=15,
        )
        assert response.status_code == 202, response.text

    def post_feedback(self, body: dict[str, Any]) -> str:
        """Post one message in the canonical form to ingest; its event id."""
        response = httpx.post(
            f"{self.ingest.base}/v1/feedback",
            json=body,
            headers={"Authorization": f"Bearer {DEV_API_KEY}"},
            timeout=15,
        )
        assert response.status_code == 202, response.text
        return str(response.json()["event_id"])

    async def produce_classified(self, message: ClassifiedIn) -> None:
        """Put a message on feedback.classified as the classifier would, with the tags given
        (the way to a tag the classifier was unsure of, whatever the model says)."""
        classified = message.feedback
        producer = AIOKafkaProducer(**self.kafka.client_kwargs(), acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(
                self.kafka.topic(feedback_classified),
                classified.model_dump_json().encode(),
                key=classified.feedback.customer.id.encode(),
            )
        finally:
            await producer.stop()

    def set_presence(self, **presence: str) -> None:
        with self.api("kate") as api:
            for agent_id, value in presence.items():
                response = api.put(f"/v1/agents/{agent_id}/presence", json={"presence": value})
                assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
async def stack(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    tmp = Path(tmp_path_factory.mktemp("console"))
    kafka = KafkaSettings(bootstrap=broker.bootstrap, topic_prefix=f"c{uuid.uuid4().hex[:10]}.")
    from services.common.topics import ALL_TOPICS

    await ensure_topics(kafka, ALL_TOPICS)
    (tmp / "roster.yaml").write_text(json.dumps(ROSTER))
    (tmp / "sla.yaml").write_text(SLA)
    base = {
        **os.environ,
        "TRIAGE_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "TRIAGE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
    }
    # The trends worker judges at once (no hour of warm-up) and often, on windows of minutes:
    # a test's burst is its whole history.
    trends = ServiceProcess(
        "trends",
        {
            **base,
            "TRIAGE_TRENDS_ROSTER_FILE": str(tmp / "roster.yaml"),
            "TRIAGE_TRENDS_WARMUP_S": "0",
            "TRIAGE_TRENDS_EVALUATE_INTERVAL_S": "1",
            "TRIAGE_TRENDS_CLUSTER_GROWTH_WINDOW_MIN": "10",
            "TRIAGE_TRENDS_CLUSTER_BASELINE_WINDOW_MIN": "60",
        },
        tmp,
    )
    processes = [
        ServiceProcess("ingest", base, tmp),
        ServiceProcess(
            "classifier",
            {
                **base,
                "TRIAGE_CLASSIFIER_APP_ID": f"cl-{uuid.uuid4().hex[:8]}",
                "TRIAGE_CLASSIFIER_DATA_DIR": str(tmp / "classifier"),
                "TRIAGE_CLASSIFIER_BATCH_WAIT_S": "0.1",
            },
            tmp,
        ),
        ServiceProcess(
            "router",
            {
                **base,
                "TRIAGE_ROUTER_APP_ID": f"rt-{uuid.uuid4().hex[:8]}",
                "TRIAGE_ROUTER_DATA_DIR": str(tmp / "router"),
                "TRIAGE_ROUTER_ROSTER_FILE": str(tmp / "roster.yaml"),
                "TRIAGE_ROUTER_SLA_FILE": str(tmp / "sla.yaml"),
                "TRIAGE_ROUTER_OFFER_TIMEOUT_S": "300",
                "TRIAGE_ROUTER_TICK_INTERVAL_S": "0.5",
                "TRIAGE_ROUTER_DISCONNECT_GRACE_S": str(DISCONNECT_GRACE_S),
                "TRIAGE_ROUTER_TRENDS_URL": trends.base,
            },
            tmp,
        ),
        trends,
    ]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.wait_ready(timeout_s=120)
        yield Stack(kafka=kafka, ingest=processes[0], router=processes[2], trends=trends)
    finally:
        for process in processes:
            process.stop()


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium (installed when missing): Playwright drives it, downloading nothing."""
    return ensure_program("chromium", "chromium")


@pytest.fixture(scope="module")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()
