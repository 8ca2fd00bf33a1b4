"""The demo's incidents: many phrasings of one complaint, spread over the incident, in the
shape ingest accepts, and the trends settings the demo gives."""

from __future__ import annotations

import random

import pytest

from services.demo import incidents
from services.demo.launch import trends_demo_environment
from services.demo.traffic import make_customers
from services.ingest.models import FeedbackIn
from services.trends.settings import TrendsSettings


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
        body = incidents.incident_message(serial, text, person, rng, run_id="inc")
        assert body["text"] == text
        FeedbackIn.model_validate(body)


def test_the_demo_tunes_the_trends_for_demo_time_and_keeps_user_settings() -> None:
    added = trends_demo_environment({"TRIAGE_TRENDS_WARMUP_S": "600"})
    assert "TRIAGE_TRENDS_WARMUP_S" not in added
    settings = TrendsSettings.model_validate(
        {name.removeprefix("TRIAGE_TRENDS_").lower(): value for name, value in added.items()}
    )
    assert settings.surge_window_min == 2
    assert settings.cluster_rules().growth_window.total_seconds() == 120
