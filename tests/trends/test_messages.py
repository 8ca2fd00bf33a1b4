"""The sketch on feedback.classified (optional, so old records still read) and the trends'
own messages."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError

from services.classifier import pipeline
from services.classifier.model import Prediction
from services.common.messages import (
    Channel,
    Customer,
    EmbeddingSketch,
    FeedbackClassified,
    FeedbackReceived,
    Source,
    Tag,
    event_id_for,
)
from services.common.sketch import unit_vector
from services.common.trends import EmergingIssue, SurgeEvent
from services.trends.clusters import Emerging, Representative
from services.trends.observation import observe
from services.trends.surges import Surge, surge_id
from services.trends.worker import EVENT_NAMESPACE, emerging_issue, surge_event

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def classified(embedding: npt.NDArray[np.float32] | None) -> FeedbackClassified:
    event = FeedbackReceived(
        event_id=event_id_for("test", "1"),
        source=Source(platform="test", event_id="1"),
        channel=Channel.CHAT,
        customer=Customer(id="c1"),
        text="The app shows error 503 when I log in.",
        received_at=NOW,
    )
    prediction = Prediction(
        sentiment=Tag(label="negative", probability=0.9),
        category=Tag(label="access_inconvenience", probability=0.8),
        difficult=Tag(label="none", probability=0.7),
        sentiment_score=-0.8,
        embedding=embedding,
    )
    return pipeline.assemble(
        event, prediction, past=[], model_version="v", window_days=30, repeat_threshold=3, now=NOW
    )


def test_the_classifier_writes_a_sketch_of_the_embedding() -> None:
    embedding = np.random.default_rng(1).standard_normal(384).astype(np.float32)
    message = classified(embedding / np.linalg.norm(embedding))
    assert message.embedding is not None
    vector = unit_vector(message.embedding.values)
    assert vector is not None
    again = FeedbackClassified.model_validate_json(message.model_dump_json())
    assert again == message
    seen = observe(again)
    assert seen.vector is not None
    assert seen.category == "access_inconvenience"
    assert seen.channel == "chat"
    assert "503" in seen.terms


def test_records_without_a_sketch_still_read() -> None:
    message = classified(None)
    assert message.embedding is None
    record = json.loads(message.model_dump_json())
    del record["embedding"]  # as written before the field existed
    old = FeedbackClassified.model_validate(record)
    assert observe(old).vector is None


@pytest.mark.parametrize("values", ["", "A" * 171, "!" * 172])
def test_a_sketch_has_its_one_shape(values: str) -> None:
    with pytest.raises(ValidationError):
        EmbeddingSketch(values=values)


def test_events_have_stable_ids() -> None:
    start = NOW - timedelta(minutes=10)
    surge = Surge(
        surge_id=surge_id("billing", "email", start),
        category="billing",
        channel="email",
        window_start=start,
        detected_at=NOW,
        count=12,
        expected=1.5,
        p_value=1e-7,
        baseline="recent",
        peak_count=12,
    )
    started, ended = surge_event(surge), surge_event(replace(surge, ended_at=NOW))
    assert started.state == "started"
    assert ended.state == "ended"
    assert started.surge_id == ended.surge_id
    assert started.event_id != ended.event_id
    assert surge_event(surge).event_id == started.event_id
    SurgeEvent.model_validate_json(started.model_dump_json())

    member = str(event_id_for("test", "m"))
    report = Emerging(
        cluster_id=str(event_id_for("test", "cluster")),
        size=7,
        recent=7,
        expected_recent=0.0,
        growth=7.0,
        first_seen=start,
        last_seen=NOW,
        top_terms=("503", "app"),
        categories={"access_inconvenience": 7},
        channels={"chat": 7},
        representatives=(Representative(member, "The app shows error 503", NOW, "a", "chat"),),
        member_ids=(member,),
    )
    issue = emerging_issue("v", report, NOW)
    assert issue.event_id == emerging_issue("v", report, NOW + timedelta(minutes=1)).event_id
    assert EmergingIssue.model_validate_json(issue.model_dump_json()) == issue
    # Growth updates: the cluster's key, an id per report number, the same on every replica.
    assert (issue.report, issue.previous_size) == (1, None)
    grown = replace(report, size=18)
    update = emerging_issue("v", grown, NOW, number=2, previous_size=7)
    assert (update.cluster_id, update.report, update.previous_size) == (issue.cluster_id, 2, 7)
    assert update.event_id != issue.event_id
    later = emerging_issue("v", grown, NOW + timedelta(seconds=30), number=2, previous_size=7)
    assert later.event_id == update.event_id
    third = emerging_issue("v", replace(report, size=30), NOW, number=3, previous_size=18)
    assert third.event_id not in {issue.event_id, update.event_id}
    # Backward compatible: a first report keeps the id of the cluster alone, and a message
    # written without the new fields reads as a first report.
    assert issue.event_id == uuid.uuid5(EVENT_NAMESPACE, f"emerging\x00{report.cluster_id}")
    written_before = json.loads(issue.model_dump_json())
    del written_before["report"], written_before["previous_size"]
    assert EmergingIssue.model_validate(written_before) == issue
    with pytest.raises(ValidationError):
        EmergingIssue.model_validate({**written_before, "report": 0})
