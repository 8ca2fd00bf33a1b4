"""The demo's incidents: many phrasings of one complaint, spread over the incident, in the
shape ingest accepts, sized to the traffic, and the trends settings the demo gives; the demo's
traffic with its incident, tagged by the shipped model, raises a surge and an emerging issue."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.classifier.model import LABELS, TriageModel
from services.common.sketch import sketch, unit_vector
from services.demo import incidents
from services.demo.launch import trends_demo_environment
from services.demo.traffic import (
    Sample,
    burst_factor,
    load_samples,
    make_customers,
    message,
    next_arrival,
)
from services.ingest.models import FeedbackIn
from services.trends.observation import Observation, excerpt_of, terms_of
from services.trends.settings import TrendsSettings
from services.trends.state import TrendsState
from services.trends.surges import ALL_CHANNELS, Surge


@pytest.mark.parametrize("incident", list(incidents.INCIDENTS.values()), ids=lambda i: i.name)
def test_an_incident_is_written_many_ways(incident: incidents.Incident) -> None:
    rng = random.Random(1)
    texts = incidents.texts(incident, 60, rng)
    assert len(texts) == 60
    assert len(set(texts)) == 60  # distinct while phrasings last
    assert all(text.startswith(incident.openings) for text in texts)
    assert incidents.channel_of(incident, rng) in incident.channels


def test_arrivals_are_spread_over_the_incident_in_order() -> None:
    offsets = incidents.arrivals(50, 600, random.Random(2))
    assert offsets == sorted(offsets)
    assert offsets[0] >= 0
    assert offsets[-1] <= 600
    assert offsets[-1] - offsets[0] > 300


def test_incident_messages_are_what_ingest_accepts() -> None:
    rng = random.Random(3)
    person = make_customers(1, rng)[0]
    for serial, text in enumerate(incidents.texts(incidents.OUTAGE, 20, rng)):
        channel = incidents.channel_of(incidents.OUTAGE, rng)
        body = incidents.incident_message(serial, text, person, rng, run_id="inc", channel=channel)
        assert body["text"] == text
        assert body["channel"] == channel
        FeedbackIn.model_validate(body)


def test_the_incident_is_sized_to_the_traffic_on_its_own_channels() -> None:
    plan = incidents.IncidentPlan()
    assert plan.size(2.0) == 144  # 0.6 of 2 messages a second, over two minutes
    assert plan.size(4.0) == 2 * plan.size(2.0)
    assert plan.size(0.1) == incidents.MIN_INCIDENT_MESSAGES
    assert incidents.IncidentPlan(count=25).size(8.0) == 25
    events = incidents.burst(plan, 2.0, random.Random(4), run_id="inc")
    assert len(events) == 144
    offsets = [offset for offset, _ in events]
    assert offsets == sorted(offsets)
    assert offsets[0] >= 0
    assert offsets[-1] <= plan.duration_s
    assert len({body["customer"]["id"] for _, body in events}) == 144
    channels = Counter(body["channel"] for _, body in events)
    # Customers write about an outage on social media and chat far more than usual.
    assert channels["social"] + channels["chat"] > 0.65 * 144


def test_the_demo_tunes_the_trends_for_demo_time_and_keeps_user_settings() -> None:
    added = trends_demo_environment({"TRIAGE_TRENDS_WARMUP_S": "600"})
    assert "TRIAGE_TRENDS_WARMUP_S" not in added
    settings = TrendsSettings.model_validate(
        {name.removeprefix("TRIAGE_TRENDS_").lower(): value for name, value in added.items()}
    )
    assert settings.surge_window_min == 2
    assert settings.cluster_rules().growth_window.total_seconds() == 120


DEMO_RATE = 2.0  # `triage up --demo`'s default rate
T0 = datetime(2026, 3, 2, 10, 0, 17, tzinfo=UTC)


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    """What the demo's customers write: a random fifth of the corpus (the same mix of
    categories and channels), so the model tags it in seconds."""
    everything = load_samples()
    return random.Random(0).sample(everything, len(everything) // 5)


@pytest.fixture(scope="module")
def tag(samples: list[Sample]) -> dict[str, tuple[str, str, str, str, str]]:
    """The shipped model's tags and sketch of every corpus and incident text, as the classifier
    puts them on feedback.classified: (category, sentiment, difficult, sketch, model version)."""
    model = TriageModel.load()
    texts = sorted(
        {s.text for s in samples}
        | {t for i in incidents.INCIDENTS.values() for t in incidents.phrasings(i)}
    )
    embeddings, probabilities = model.outputs(texts, batch_size=64)
    labels = {
        task: [LABELS[task][int(n)] for n in probabilities[task].argmax(axis=1)]
        for task in ("category", "sentiment", "difficult")
    }
    return {
        text: (
            labels["category"][n],
            labels["sentiment"][n],
            labels["difficult"][n],
            sketch(embeddings[n]),
            model.version,
        )
        for n, text in enumerate(texts)
    }


def demo_traffic(
    seed: int, plan: incidents.IncidentPlan, samples: list[Sample]
) -> list[tuple[float, dict[str, Any], bool]]:
    """What the demo's customers post over the first ``after_s + duration_s + 2 min`` (the
    runner's arrivals, bursts and messages) and its incident's burst: (seconds from the start,
    ingest event, whether it is the incident's), in order."""
    rng = random.Random(seed)
    people = make_customers(300, rng)
    end = plan.after_s + plan.duration_s + 120
    posted: list[tuple[float, dict[str, Any], bool]] = []
    t = 0.0
    while True:
        t += next_arrival(DEMO_RATE, burst_factor(t), rng)
        if t >= end:
            break
        posted.append(
            (t, message(len(posted), rng.choice(people), samples, rng, run_id="d"), False)
        )
    for offset, body in incidents.burst(plan, DEMO_RATE, rng, run_id="incident"):
        posted.append((plan.after_s + offset, body, True))
    return sorted(posted, key=lambda item: item[0])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_demo_incident_raises_a_surge_and_an_emerging_issue(
    samples: list[Sample], tag: dict[str, tuple[str, str, str, str, str]], seed: int
) -> None:
    """The trends worker's state with the demo's settings, judged on the demo's clock every
    evaluation interval: the incident raises a surge on a series it feeds, within three
    minutes of its start, and an emerging cluster; nothing is raised before it."""
    plan = incidents.IncidentPlan()
    env = trends_demo_environment({})
    settings = TrendsSettings.model_validate(
        {name.removeprefix("TRIAGE_TRENDS_").lower(): value for name, value in env.items()}
    )
    state = TrendsState(settings.surge_rules(), settings.cluster_rules())
    traffic = demo_traffic(seed, plan, samples)
    fed: set[tuple[str, str]] = set()  # the series the incident's messages went to
    incident_ids: set[str] = set()
    surges: list[Surge] = []
    emerging: list[tuple[datetime, tuple[str, ...]]] = []
    clock, index = 0.0, 0
    while index < len(traffic):
        clock += settings.evaluate_interval_s
        while index < len(traffic) and traffic[index][0] < clock:
            at, body, in_incident = traffic[index]
            index += 1
            category, sentiment, difficult, sketched, version = tag[body["text"]]
            event_id = str(uuid.uuid4())
            if in_incident:
                fed |= {(category, body["channel"]), (category, ALL_CHANNELS)}
                incident_ids.add(event_id)
            state.add(
                Observation(
                    event_id=event_id,
                    at=T0 + timedelta(seconds=at),
                    category=category,
                    channel=body["channel"],
                    sentiment=sentiment,
                    difficult=difficult,
                    excerpt=excerpt_of(body["text"]),
                    terms=terms_of(body["text"]),
                    vector=unit_vector(sketched),
                    model_version=version,
                )
            )
        changes = state.advance(T0 + timedelta(seconds=clock))
        surges += [s for s in changes.surges if s.ended_at is None]
        emerging += [(T0 + timedelta(seconds=clock), e.member_ids) for _, e in changes.emerging]
    start = T0 + timedelta(seconds=plan.after_s)
    assert all(s.detected_at >= start for s in surges), surges  # no false alarm before it
    ours = [s for s in surges if (s.category, s.channel) in fed]
    assert ours, f"no surge on the incident's series {sorted(fed)}: {surges}"
    assert ours[0].detected_at - start <= timedelta(minutes=3)
    found = [
        at for at, members in emerging if sum(m in incident_ids for m in members) > len(members) / 2
    ]
    assert found
    assert found[0] - start <= timedelta(minutes=3)
