"""The trends worker on the real broker: classified messages in, the API and the topics out.

The messages are classified by the shipped model through the classifier's own assembly step
(tags and the embedding sketch as the classifier writes them), then produced to
feedback.classified: a burst of 30 near-identical complaints among varied background traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.classifier import pipeline
from services.classifier.model import TriageModel
from services.common.broker import free_port
from services.common.clock import utc_now
from services.common.kafka import KafkaSettings, ensure_topics
from services.common.messages import (
    Channel,
    Customer,
    FeedbackClassified,
    FeedbackReceived,
    Source,
    event_id_for,
)
from services.common.topics import feedback_classified, trends_emerging
from services.common.trends import EmergingIssue
from services.demo import incidents
from services.demo.traffic import load_samples
from services.trends.app import create_service, serve
from services.trends.settings import TrendsSettings
from services.trends.worker import TrendsService
from tests.support.kafka import read_records

pytestmark = pytest.mark.timeout(180)

SUPERVISOR = {"Authorization": "Bearer dev-kate"}
FRONTLINE = {"Authorization": "Bearer dev-ana"}


@pytest.fixture(scope="module")
def model() -> TriageModel:
    return TriageModel.load()


def classified(
    model: TriageModel, texts: list[tuple[str, str, datetime]], tag: str
) -> list[FeedbackClassified]:
    """Each (text, channel, time) classified by the shipped model, as the classifier emits it."""
    predictions = model.predict([text for text, _, _ in texts])
    out = []
    for n, ((text, channel, at), prediction) in enumerate(zip(texts, predictions, strict=True)):
        event = FeedbackReceived(
            event_id=event_id_for("trends-test", f"{tag}-{n}"),
            source=Source(platform="trends-test", event_id=f"{tag}-{n}"),
            channel=Channel(channel),
            customer=Customer(id=f"{tag}-customer-{n}"),
            text=text,
            received_at=at,
        )
        out.append(
            pipeline.assemble(
                event,
                prediction,
                past=[],
                model_version=model.version,
                window_days=30,
                repeat_threshold=3,
                now=at,
            )
        )
    return out


async def produce(kafka: KafkaSettings, messages: list[FeedbackClassified]) -> None:
    producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all")
    await producer.start()
    try:
        for message in messages:
            await producer.send_and_wait(
                kafka.topic(feedback_classified),
                key=message.feedback.customer.id.encode(),
                value=message.model_dump_json().encode(),
            )
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def running(kafka: KafkaSettings, **overrides: Any) -> AsyncIterator[TrendsService]:
    """The trends worker in this process, caught up; stopped on exit."""
    settings = TrendsSettings(port=free_port(), evaluate_interval_s=0.2, **overrides)
    service = create_service(settings, kafka)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(service, stop=stop))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while not service.ready:
        if task.done():
            task.result()
        assert loop.time() < deadline, "the trends worker did not catch up"
        await asyncio.sleep(0.05)
    try:
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def test_a_burst_of_near_identical_complaints_is_an_emerging_cluster(
    kafka: KafkaSettings, model: TriageModel
) -> None:
    rng = random.Random(23)
    now = utc_now()
    await ensure_topics(kafka, [feedback_classified])
    samples = [s for s in load_samples() if len(s.text) < 400]
    background = [
        (
            sample.text,
            rng.choice(["email", "chat", "social", "web"]),
            now - timedelta(minutes=rng.uniform(15, 150)),
        )
        for sample in rng.sample(samples, 70)
    ]
    burst_texts = incidents.texts(incidents.OUTAGE, 30, rng)
    burst = [
        (text, incidents.channel_of(incidents.OUTAGE, rng), now - timedelta(minutes=12 - n * 0.3))
        for n, text in enumerate(burst_texts)
    ]
    messages = classified(model, background, "bg") + classified(model, burst, "burst")
    assert all(m.embedding is not None for m in messages)
    burst_ids = {str(m.event_id) for m in messages[len(background) :]}
    ordered = sorted(messages, key=lambda m: m.feedback.received_at)
    await produce(kafka, ordered[:50])
    async with running(kafka) as service:
        await produce(kafka, ordered[50:])
        await produce(kafka, ordered[:5])  # repeats change nothing
        base = f"http://127.0.0.1:{service.settings.port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            found: list[dict[str, Any]] = []
            deadline = asyncio.get_running_loop().time() + 30
            while not found:
                assert asyncio.get_running_loop().time() < deadline, "no emerging cluster"
                await asyncio.sleep(0.2)
                answer = await client.get("/v1/trends/emerging", headers=SUPERVISOR)
                assert answer.status_code == 200, answer.text
                found = answer.json()
            assert len(found) == 1, [c["top_terms"] for c in found]
            cluster = found[0]
            detail = await client.get(
                f"/v1/trends/emerging/{cluster['cluster_id']}", headers=SUPERVISOR
            )
            assert detail.status_code == 200
            members = set(detail.json()["member_ids"])
            assert len(members & burst_ids) >= 20, cluster
            assert len(members - burst_ids) <= 3
            assert {"503", "app"} & set(cluster["top_terms"]), cluster["top_terms"]
            assert len(cluster["representatives"]) == 3
            assert all(r["event_id"] in burst_ids for r in cluster["representatives"])

            volumes = await client.get("/v1/trends", params={"window": "5m"}, headers=SUPERVISOR)
            assert volumes.status_code == 200
            body = volumes.json()
            assert body["totals"]["total"] == len(messages)
            assert len(body["buckets"]) == 288
            assert sum(b["total"] for b in body["buckets"]) == len(messages)
            social = await client.get(
                "/v1/trends", params={"channel": "social"}, headers=SUPERVISOR
            )
            expected_social = sum(1 for m in messages if m.feedback.channel == Channel.SOCIAL)
            assert social.json()["totals"]["total"] == expected_social

            assert (await client.get("/v1/trends")).status_code == 401
            assert (await client.get("/v1/trends", headers=FRONTLINE)).status_code == 401
            assert (
                await client.get("/v1/trends", params={"team": "nope"}, headers=SUPERVISOR)
            ).status_code == 422
            surges = await client.get("/v1/trends/surges", headers=SUPERVISOR)
            assert surges.status_code == 200
            metrics = (await client.get("/metrics")).text
            assert "triage_trends_emerging_clusters_total 1.0" in metrics
            counted = [
                float(line.rsplit(" ", 1)[1])
                for line in metrics.splitlines()
                if line.startswith("triage_trends_messages_total{")
            ]
            assert sum(counted) == len(messages)

    records = await read_records(kafka, kafka.topic(trends_emerging), expected=1)
    assert len(records) == 1
    issue = EmergingIssue.model_validate(json.loads(records[0].value))
    # Sent once, when first found: with the members it had then, all of the burst.
    assert uuid.UUID(cluster["cluster_id"]) == issue.cluster_id
    assert len(issue.member_ids) >= 5
    assert {str(m) for m in issue.member_ids} <= burst_ids
