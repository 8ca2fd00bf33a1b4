"""The trends worker on the real broker: classified messages in, the API and the topics out.

The messages are classified by the shipped model through the classifier's own assembly step
(tags and the embedding sketch as the classifier writes them), then produced to
feedback.classified: a burst of 30 near-identical complaints among varied background traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
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
from tests.support.kafka import ConsumedRecord, read_records

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
    issues = reports_of_one_cluster(records)
    # Sent when first found, with the members it had then, all of the burst (and again, as
    # growth updates, when the worker judged before it had read the whole burst).
    issue = issues[0]
    assert uuid.UUID(cluster["cluster_id"]) == issue.cluster_id
    assert len(issue.member_ids) >= 5
    assert {str(m) for i in issues for m in i.member_ids} <= burst_ids


def reports_of_one_cluster(records: list[ConsumedRecord]) -> list[EmergingIssue]:
    """The records of trends.emerging, checked to be one cluster's first report and then its
    growth updates in order, each grown by half and by ten members since the one before."""
    issues = [EmergingIssue.model_validate(json.loads(r.value)) for r in records]
    assert issues
    assert {r.key for r in records} == {str(issues[0].cluster_id).encode()}
    assert [i.report for i in issues] == list(range(1, len(issues) + 1))
    assert issues[0].previous_size is None
    for before, after in itertools.pairwise(issues):
        assert after.cluster_id == before.cluster_id
        assert after.previous_size == before.size
        assert after.size - before.size >= max(10, before.size / 2)
        assert after.detected_at > before.detected_at
    assert len({i.event_id for i in issues}) == len(issues)
    return issues


async def test_a_cluster_that_keeps_growing_is_reported_again_with_its_growth(
    kafka: KafkaSettings, model: TriageModel
) -> None:
    rng = random.Random(31)
    now = utc_now()
    await ensure_topics(kafka, [feedback_classified])
    samples = [s for s in load_samples() if len(s.text) < 400]
    background = [
        (
            sample.text,
            rng.choice(["email", "chat", "social", "web"]),
            now - timedelta(minutes=rng.uniform(20, 150)),
        )
        for sample in rng.sample(samples, 60)
    ]
    burst = [
        (text, incidents.channel_of(incidents.OUTAGE, rng), now - timedelta(minutes=15 - n * 0.3))
        for n, text in enumerate(incidents.texts(incidents.OUTAGE, 36, rng))
    ]
    burst_messages = classified(model, burst, "burst")
    burst_ids = {str(m.event_id) for m in burst_messages}
    topic = kafka.topic(trends_emerging)
    await produce(kafka, classified(model, background, "bg"))
    async with running(kafka) as service:
        # The first members of the incident: the cluster is found and reported.
        await produce(kafka, burst_messages[:10])
        (first_record,) = await read_records(kafka, topic, expected=1, timeout_s=30)
        (first,) = reports_of_one_cluster([first_record])
        assert first.size < 20
        # The rest arrive: the same cluster, grown by more than half, is reported again.
        await produce(kafka, burst_messages[10:])
        await read_records(kafka, topic, expected=2, timeout_s=30)
    # The worker has stopped: all it sent is on the topic, one update or more (it may judge
    # while the rest of the burst is still arriving).
    issues = reports_of_one_cluster(await read_records(kafka, topic, expected=2))
    assert len(issues) >= 2
    assert issues[0] == first
    assert len({str(m) for m in issues[-1].member_ids} & burst_ids) >= 20
    registry = service.metrics.registry
    assert registry.get_sample_value("triage_trends_emerging_clusters_total") == 1
    assert registry.get_sample_value("triage_trends_emerging_updates_total") == len(issues) - 1
