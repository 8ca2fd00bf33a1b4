"""The trends API's filters, answers and refusals, over a state filled in memory (the broker
tier is tests/trends/test_worker_broker.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from click.testing import CliRunner

from services.cli import main
from services.common.kafka import KafkaSettings
from services.trends.access import DEV_ROSTER_PATH, load_access, parse_access
from services.trends.api import create_api
from services.trends.observation import Observation
from services.trends.settings import TrendsSettings
from services.trends.worker import TrendsService

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SUPERVISOR = {"Authorization": "Bearer dev-kate"}


def obs(
    n: int, minutes: float, category: str, channel: str, sentiment: str, difficult: str
) -> Observation:
    return Observation(
        event_id=str(uuid.UUID(int=n)),
        at=T0 + timedelta(minutes=minutes),
        category=category,
        channel=channel,
        sentiment=sentiment,
        difficult=difficult,
        excerpt="text",
        terms=("text",),
        vector=None,
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    service = TrendsService(TrendsSettings(), KafkaSettings())
    rows = [
        ("billing", "email", "negative", "angry"),
        ("billing", "chat", "negative", "none"),
        ("delay", "email", "neutral", "none"),
        ("praise", "social", "positive", "none"),
    ]
    for n, row in enumerate(rows * 3):
        service.state.add(obs(n, n * 7, *row))
    service.state.advance(T0 + timedelta(minutes=90))
    api = create_api(service, load_access(None, production=False))
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://trends") as http:
        yield http


async def test_volumes_by_every_filter(client: httpx.AsyncClient) -> None:
    hourly = (await client.get("/v1/trends", headers=SUPERVISOR)).json()
    assert len(hourly["buckets"]) == 168
    assert hourly["totals"]["total"] == 12
    assert hourly["totals"]["category"] == {"billing": 6, "delay": 3, "praise": 3}
    assert hourly["totals"]["difficult"] == {"angry": 3, "none": 9}
    assert hourly["buckets"][-1]["start"] == "2026-03-02T10:00:00Z"

    angry = (await client.get("/v1/trends", params={"tag": "angry"}, headers=SUPERVISOR)).json()
    assert angry["totals"]["total"] == 3
    assert angry["filters"] == {"tag": "angry"}
    positive = await client.get("/v1/trends", params={"tag": "positive"}, headers=SUPERVISOR)
    assert positive.json()["totals"]["category"] == {"praise": 3}
    billing_team = await client.get("/v1/trends", params={"team": "billing"}, headers=SUPERVISOR)
    assert billing_team.json()["totals"]["category"] == {"billing": 6}
    care_chat = await client.get(
        "/v1/trends", params={"team": "care", "channel": "chat"}, headers=SUPERVISOR
    )
    assert care_chat.json()["totals"]["total"] == 0
    five = await client.get(
        "/v1/trends",
        params={"window": "5m", "since": "2026-03-02T09:00:00Z", "until": "2026-03-02T09:29:59Z"},
        headers=SUPERVISOR,
    )
    body = five.json()
    # One message every 7 minutes from 09:00: 0, 7, 14, 21, 28.
    assert [b["total"] for b in body["buckets"]] == [1, 1, 1, 0, 1, 1]


@pytest.mark.parametrize(
    "params",
    [
        {"tag": "nonsense"},
        {"team": "nobody"},
        {"channel": "fax"},
        {"window": "1d"},
        {"since": "2026-03-02T10:00:00Z", "until": "2026-03-02T09:00:00Z"},
        {"since": "2026-03-02T10:00:00"},  # no time zone
    ],
)
async def test_bad_filters_are_refused(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    answer = await client.get("/v1/trends", params=params, headers=SUPERVISOR)
    assert answer.status_code == 422


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer dev-ana"},
        {"Authorization": "Basic a2F0ZTp4"},
        {"Authorization": "Bearer nope"},
    ],
)
@pytest.mark.parametrize(
    "path",
    [
        "/v1/trends",
        "/v1/trends/surges",
        "/v1/trends/emerging",
        f"/v1/trends/emerging/{uuid.uuid4()}",
    ],
)
async def test_only_supervisors_read_the_trends(
    client: httpx.AsyncClient, headers: dict[str, str], path: str
) -> None:
    answer = await client.get(path, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"


async def test_surges_and_clusters_answer_empty_or_not_found(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/trends/surges", headers=SUPERVISOR)).json() == []
    assert (await client.get("/v1/trends/emerging", headers=SUPERVISOR)).json() == []
    missing = await client.get(f"/v1/trends/emerging/{uuid.uuid4()}", headers=SUPERVISOR)
    assert missing.status_code == 404
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).status_code == 503  # never started: not caught up


def test_the_development_roster_is_refused_in_production() -> None:
    from services.common.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="development roster"):
        load_access(DEV_ROSTER_PATH, production=True)
    access = parse_access(
        {
            "default_team": "a",
            "teams": [{"id": "a", "categories": ["billing"]}],
            "agents": [{"id": "boss", "tier": "supervisor", "token_sha256": "0" * 64}],
        }
    )
    assert access.supervisor_of("anything") is None
    assert access.categories_of("a") == frozenset({"billing"})


def test_the_command_is_there() -> None:
    result = CliRunner().invoke(main, ["trends", "--help"])
    assert result.exit_code == 0
    assert "--port" in result.output
