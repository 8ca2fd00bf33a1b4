"""A real Prometheus scrapes a running router during an end-to-end run, and a PromQL query of
the service-level metric returns what happened: one first response in target, one late."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.common.broker import EmbeddedBroker, free_port
from services.common.kafka import KafkaSettings
from tests.router.factories import feedback
from tests.router.test_service import Router, auth, produce, record_of, start_router, wait_for

pytestmark = pytest.mark.timeout(240)

SLA = """
warning_share: 0.5
on_warning: [notify]
on_breach: [notify]
calendars:
  always: {timezone: UTC, always_open: true}
targets:
  "*":
    "*": {first_response: 3s, resolution: 1h}
"""
ATTAINMENT = (
    'sum(triage_router_sla_met_total{metric="first_response"})'
    ' / sum(triage_router_sla_completed_total{metric="first_response"})'
)


@pytest.fixture
def routers() -> Iterator[list[Router]]:
    started: list[Router] = []
    yield started
    for router in started:
        router.kill()


async def query(http: httpx.AsyncClient, port: int, expr: str) -> list[dict[str, object]]:
    response = await http.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": expr})
    response.raise_for_status()
    result: list[dict[str, object]] = response.json()["data"]["result"]
    return result


async def test_prometheus_scrapes_the_router_and_computes_attainment(
    broker: EmbeddedBroker,
    kafka: KafkaSettings,
    tmp_path: Path,
    routers: list[Router],
    prometheus: str,
) -> None:
    router = await start_router(kafka, tmp_path, routers, sla_text=SLA)
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: router\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{router.port}']}}]\n"
    )
    server = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=(tmp_path / "prometheus.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            on_time = feedback("Late parcel", customer="p-1", category="delay")
            late = feedback("Late parcel again", customer="p-2", category="delay")
            await produce(kafka, [record_of(on_time), record_of(late)])
            cases = await wait_for(
                http,
                f"{router.base}/v1/cases",
                "boss",
                lambda cs: len(cs) == 2 and all(c["offer"] for c in cs),
            )
            by_customer = {c["customer_id"]: c for c in cases}
            for customer in ("p-1", "p-2"):
                case = by_customer[customer]
                holder = case["offer"]["agent_id"]
                accepted = await http.post(
                    f"{router.base}/v1/cases/{case['case_id']}/accept", headers=auth(holder)
                )
                assert accepted.status_code == 200
                if customer == "p-2":
                    await asyncio.sleep(4)  # past the 3 s first-response target
                responded = await http.post(
                    f"{router.base}/v1/cases/{case['case_id']}/respond", headers=auth(holder)
                )
                assert responded.status_code == 200
            deadline = asyncio.get_running_loop().time() + 60
            value = None
            while asyncio.get_running_loop().time() < deadline:
                try:
                    result = await query(http, port, ATTAINMENT)
                except httpx.HTTPError:
                    result = []
                if result:
                    value = float(result[0]["value"][1])  # type: ignore[index]
                    if value == 0.5:
                        break
                await asyncio.sleep(1)
            assert value == 0.5, (tmp_path / "prometheus.log").read_text()[-3000:]
            breaches = await query(
                http, port, 'sum(triage_router_sla_breaches_total{metric="first_response"})'
            )
            assert float(breaches[0]["value"][1]) == 1.0  # type: ignore[index]
            up = await query(http, port, 'up{job="router"}')
            assert float(up[0]["value"][1]) == 1.0  # type: ignore[index]
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
