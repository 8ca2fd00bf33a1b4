"""The docker-compose file parses and its references resolve."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import yaml

from services.cli import main
from services.common.topics import ALL_TOPICS
from services.trends.settings import TrendsSettings
from services.webhooks.settings import WebhooksSettings

ROOT = Path(__file__).parents[2]


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


def test_services_and_dependencies_resolve() -> None:
    compose = _compose()
    services = compose["services"]
    assert {
        "kafka",
        "kafka-init",
        "ingest",
        "classifier",
        "router",
        "webhooks",
        "trends",
    } <= set(services)
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert condition["condition"] in (
                "service_healthy",
                "service_completed_successfully",
            )
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], dependency
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file()
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("${"):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", volume.rsplit(":", 2)[0]), volume
            elif source.startswith("./"):
                assert (ROOT / source).exists(), source
            else:
                assert source in compose.get("volumes", {}), source


def test_services_have_healthchecks_and_required_secrets() -> None:
    ingest = _compose()["services"]["ingest"]
    assert "/readyz" in " ".join(ingest["healthcheck"]["test"])
    keys = ingest["environment"]["TRIAGE_INGEST_API_KEYS"]
    assert re.fullmatch(r"\$\{TRIAGE_INGEST_API_KEYS:\?.+\}", keys)
    assert ingest["environment"]["TRIAGE_ENV"] == "production"
    assert ingest["environment"]["TRIAGE_KAFKA_BOOTSTRAP"] == "kafka:9092"
    router = _compose()["services"]["router"]
    assert "/readyz" in " ".join(router["healthcheck"]["test"])
    assert router["environment"]["TRIAGE_ROUTER_ROSTER_FILE"] == "/etc/triage/roster.yaml"
    assert any(v.startswith("${TRIAGE_ROSTER_FILE:?") for v in router["volumes"])


def test_webhook_worker_runs_on_its_port_with_the_subscriptions_file() -> None:
    webhooks = _compose()["services"]["webhooks"]
    command: list[str] = webhooks["command"]
    assert command[:2] == ["triage", "webhooks"]
    assert command[1] in main.commands
    assert command[command.index("--host") + 1] == "0.0.0.0"  # noqa: S104
    port = int(command[command.index("--port") + 1])
    assert port == WebhooksSettings.model_fields["port"].default
    assert webhooks["ports"] == [f"{port}:{port}"]
    assert f"http://127.0.0.1:{port}/readyz" in " ".join(webhooks["healthcheck"]["test"])
    environment = webhooks["environment"]
    assert environment["TRIAGE_ENV"] == "production"
    assert environment["TRIAGE_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert environment["TRIAGE_KAFKA_CREATE_TOPICS"] == "false"
    # The worker reads the file the host's TRIAGE_WEBHOOKS_FILE names, mounted read-only.
    mounts = {}
    for volume in webhooks["volumes"]:
        source, target, mode = volume.rsplit(":", 2)
        mounts[target] = (source, mode)
    source, mode = mounts[environment["TRIAGE_WEBHOOKS_FILE"]]
    assert source.startswith("${TRIAGE_WEBHOOKS_FILE:?"), source
    assert mode == "ro"
    assert webhooks["depends_on"] == {"kafka-init": {"condition": "service_completed_successfully"}}
    assert webhooks.get("deploy", {}).get("replicas", 1) == 1, "a second worker delivers twice"


def test_trends_worker_runs_on_its_port_with_the_routers_roster() -> None:
    services = _compose()["services"]
    trends, router = services["trends"], services["router"]
    command: list[str] = trends["command"]
    assert command[:2] == ["triage", "trends"]
    assert command[1] in main.commands
    assert command[command.index("--host") + 1] == "0.0.0.0"  # noqa: S104
    port = int(command[command.index("--port") + 1])
    assert port == TrendsSettings.model_fields["port"].default
    assert trends["ports"] == [f"{port}:{port}"]
    healthcheck = trends["healthcheck"]
    assert f"http://127.0.0.1:{port}/readyz" in " ".join(healthcheck["test"])
    # Ready only after replaying up to 7 days of feedback.classified.
    assert int(healthcheck["start_period"].removesuffix("s")) >= 300
    environment = trends["environment"]
    assert environment["TRIAGE_ENV"] == "production"
    assert environment["TRIAGE_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert environment["TRIAGE_KAFKA_CREATE_TOPICS"] == "false"
    # The same roster file as the router's (supervisors' tokens), mounted read-only.
    roster = environment["TRIAGE_TRENDS_ROSTER_FILE"]
    assert roster == router["environment"]["TRIAGE_ROUTER_ROSTER_FILE"]
    (volume,) = [v for v in trends["volumes"] if v.rsplit(":", 2)[1] == roster]
    assert volume in router["volumes"]
    assert volume.startswith("${TRIAGE_ROSTER_FILE:?"), volume
    assert volume.endswith(":ro"), volume
    assert trends["depends_on"] == {"kafka-init": {"condition": "service_completed_successfully"}}


def test_topic_script_creates_every_topic_as_declared() -> None:
    script = (ROOT / "deploy" / "topics.sh").read_text()
    for spec in ALL_TOPICS:
        # The inbox has a partition per floor of the roster: one unless ROUTER_FLOORS says.
        partitions = (
            f'"${{ROUTER_FLOORS:-{spec.partitions}}}"'
            if spec.name == "router.inbox"
            else spec.partitions
        )
        assert f"create {spec.name} {partitions} {spec.retention_ms}" in script


def test_kafka_keeps_its_log_dirs_on_its_volume() -> None:
    # Without KAFKA_LOG_DIRS the apache/kafka image writes to /tmp/kraft-combined-logs: topics,
    # committed offsets and table changelogs would vanish whenever the container is recreated.
    compose = _compose()
    kafka = compose["services"]["kafka"]
    environment = kafka["environment"]
    log_dirs = [d.strip() for d in str(environment.get("KAFKA_LOG_DIRS", "")).split(",")]
    assert log_dirs != [""], "KAFKA_LOG_DIRS is not set: the broker writes to /tmp"
    mounts = {}
    for volume in kafka.get("volumes", []):
        source, target = volume.split(":")[:2]
        mounts[target.rstrip("/")] = source
    for log_dir in log_dirs:
        holders = [t for t in mounts if log_dir == t or log_dir.startswith(t + "/")]
        assert holders, f"log dir {log_dir} is not on a volume ({sorted(mounts)})"
        assert mounts[holders[0]] in compose["volumes"], f"{log_dir} is not on a named volume"
    # The metadata of a KRaft node lives there too; a stable cluster id lets it start again on
    # the storage it formatted before.
    cluster_id = str(environment.get("CLUSTER_ID", ""))
    assert cluster_id, "a fixed CLUSTER_ID keeps the formatted storage usable"
    # kafka-storage accepts only a UUID in unpadded URL-safe base64 (22 characters).
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16, cluster_id
