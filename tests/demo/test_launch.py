"""The demo's start-up checks, the environment it gives the services and its summary line."""

from __future__ import annotations

from collections import Counter

import pytest

from services.demo.launch import (
    DEMO_SLA_PATH,
    DemoError,
    demo_endpoints,
    demo_environment,
    summary,
)
from services.demo.runner import DemoStats

TOKENS = {"kate": "dev-kate", "sam": "dev-sam"}
TIERS = {"kate": "supervisor", "sam": "frontline", "lee": "frontline"}


def test_the_demo_plays_the_development_agents_with_the_development_key() -> None:
    where = demo_endpoints(
        ingest="http://i", router="http://r", api_key="key", tokens=TOKENS, tiers=TIERS
    )
    assert where.supervisor == "dev-kate"
    assert where.tokens == TOKENS
    assert where.tiers == {"kate": "supervisor", "sam": "frontline"}  # only agents it plays
    assert (where.ingest, where.router, where.api_key) == ("http://i", "http://r", "key")


@pytest.mark.parametrize(
    ("api_key", "tokens"),
    [(None, TOKENS), ("key", {})],
    ids=["configured API keys", "a real roster"],
)
def test_the_demo_refuses_a_configuration_it_cannot_play(
    api_key: str | None, tokens: dict[str, str]
) -> None:
    with pytest.raises(DemoError, match="without TRIAGE_ROUTER_ROSTER_FILE"):
        demo_endpoints(ingest="i", router="r", api_key=api_key, tokens=tokens, tiers=TIERS)


def test_the_demo_needs_a_supervisor_for_its_summary() -> None:
    with pytest.raises(DemoError, match="supervisor"):
        demo_endpoints(ingest="i", router="r", api_key="k", tokens={"sam": "dev-sam"}, tiers=TIERS)


def test_demo_time_brings_short_service_levels_unless_the_user_chose_some() -> None:
    assert demo_environment({}) == {
        "TRIAGE_ROUTER_SLA_FILE": str(DEMO_SLA_PATH),
        "TRIAGE_ROUTER_OFFER_TIMEOUT_S": "15",
    }
    assert DEMO_SLA_PATH.is_file()
    chosen = {"TRIAGE_ROUTER_OFFER_TIMEOUT_S": "40"}
    assert demo_environment(chosen) == {"TRIAGE_ROUTER_SLA_FILE": str(DEMO_SLA_PATH)}
    assert demo_environment({"TRIAGE_ROUTER_SLA_FILE": "/mine.yaml"}) == {}


def test_the_summary_counts_what_was_posted_and_what_the_router_did() -> None:
    stats = DemoStats(posted=Counter({"email": 3, "chat": 4}))
    figures = {"events_created": 5.0, "offers_accepted": 4.0, "breaches": 1.0}
    assert summary(stats, figures) == (
        "demo finished: posted 7 messages; router: created 5, assigned 4, responded 0, "
        "resolved 0, breaches 1, escalations 0"
    )
