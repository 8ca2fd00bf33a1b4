"""The faust workers' own web server serves /metrics, /healthz and /readyz, never faust's table,
router, statistics or graph views (the customer-history table holds personal data)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.classifier.app import create_app as create_classifier
from services.classifier.settings import ClassifierSettings
from services.common.kafka import KafkaSettings
from services.router.app import create_app as create_router
from services.router.settings import RouterSettings
from tests.router.factories import engine

CLOSED = (
    "/table/",
    "/table/customer-history/",
    "/table/customer-history/victim@example.com/",
    "/router/",
    "/router/customer-history/",
    "/router/customer-history/victim@example.com/",
    "/graph/",
    "/assignment/",
    "/stats/",
    "/performance/",
)
FAUST_VIEW_SETTINGS = (
    "web_tables_enabled",
    "web_router_enabled",
    "web_stats_enabled",
    "web_graph_enabled",
    "web_metrics_enabled",
)


def _classifier(tmp_path: Path) -> faust.App:
    model = SimpleNamespace(
        version="test",
        backend="test",
        metadata=SimpleNamespace(base_encoder="test", embedding_model="test"),
    )
    settings = ClassifierSettings(app_id="cl-web-test", data_dir=tmp_path / "cl")
    return create_classifier(settings, KafkaSettings(), model)  # type: ignore[arg-type]


@pytest.fixture
async def classifier_web(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    app = _classifier(tmp_path)
    web_app = await app.web.wsgi()
    async with TestClient(TestServer(web_app)) as client:
        yield client


async def test_the_classifier_serves_no_table_or_router_view(
    classifier_web: TestClient[Any, Any],
) -> None:
    for path in CLOSED:
        response = await classifier_web.get(path)
        assert response.status == 404, (path, response.status, await response.text())
    metrics = await classifier_web.get("/metrics")
    assert metrics.status == 200
    assert (await classifier_web.get("/healthz")).status == 200
    assert (await classifier_web.get("/readyz")).status in (200, 503)


def test_both_faust_apps_turn_faust_views_off(tmp_path: Path) -> None:
    router, _ = create_router(
        RouterSettings(app_id="rt-web-test", data_dir=tmp_path / "rt"),
        KafkaSettings(),
        lambda: engine(),
    )
    for app in (_classifier(tmp_path), router):
        for setting in FAUST_VIEW_SETTINGS:
            assert getattr(app.conf, setting) is False, (app.conf.id, setting)
