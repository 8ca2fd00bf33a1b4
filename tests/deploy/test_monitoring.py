"""The Prometheus config, alert rules, runbooks and Grafana dashboards are valid and use real
metrics; the Prometheus Operator overlay ships the same dashboards.

`promtool` comes from PATH or, where it is missing, from Debian's `prometheus` package; a
failed installation fails the tests rather than skipping them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from services.classifier.metrics import ClassifierMetrics
from services.cli import main
from services.common.lag import ConsumerLagCollector
from services.ingest.app import create_app
from services.router.api import create_api
from services.router.metrics import RouterMetrics
from services.trends.metrics import TrendsMetrics
from services.webhooks.delivery import outcome_of
from services.webhooks.metrics import WebhookMetrics

ROOT = Path(__file__).parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD_DIR = GRAFANA_DIR / "dashboards"
# Every dashboard compose provisions (the folder's files): its uid and title.
DASHBOARDS = {
    "triage.json": ("triage", "Complaint triage"),
    "trends.json": ("triage-trends", "Complaint trends"),
}
# The same dashboards as ConfigMaps for Grafana's sidecar, in the Prometheus Operator overlay.
OPERATOR_OVERLAY = ROOT / "deploy" / "k8s" / "overlays" / "prometheus-operator"
DASHBOARD_GENERATOR = OPERATOR_OVERLAY / "generate_dashboards.py"
DASHBOARD_CONFIG_MAPS = OPERATOR_OVERLAY / "grafana-dashboards.yaml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
# Panels query whichever Prometheus the dashboard's `datasource` variable names.
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Every series selector of a panel is narrowed to the chosen jobs and instances.
SCOPE = ('job=~"$job"', 'instance=~"$instance"')
# The services' own metrics, the HTTP metrics of both APIs and the runtime collectors.
METRIC_NAME = re.compile(r"\b(?:triage|http|process|python)_[a-z_]+")
SELECTOR = re.compile(r"\b((?:triage|http|process|python)_[a-z_]+|up)\b(\{[^}]*\})?")
RUNBOOK_PREFIX = "docs/runbooks.md#"
# Label values the services emit that read like metric names: the webhook worker's error type of
# a non-2xx answer (`error_type="http_status"`), which the runbooks and alerts name.
LABEL_VALUES = {outcome_of(500)[1]}

SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "info": ("_info",),
    "gauge": ("",),
}

# Each panel theme of the dashboard, and the fragments its expressions must contain.
DASHBOARD_THEMES: dict[str, tuple[str, ...]] = {
    "intake by channel": ('triage_ingest_events_total{outcome="accepted",', "by (channel)"),
    "sentiment": ('triage_classifier_messages_total{tag="sentiment",',),
    "category": ('triage_classifier_messages_total{tag="category",',),
    "difficult-type mix": ('triage_classifier_messages_total{tag="difficult",',),
    "queue depth": ("triage_router_queue_depth", "by (team, priority)"),
    "oldest age": ("triage_router_queue_oldest_age_seconds",),
    "first-response attainment": (
        'triage_router_sla_met_total{metric="first_response",',
        'triage_router_sla_completed_total{metric="first_response",',
    ),
    "resolution attainment": (
        'triage_router_sla_met_total{metric="resolution",',
        'triage_router_sla_completed_total{metric="resolution",',
    ),
    "breaches": ("triage_router_sla_breaches_total",),
    "escalations": ("triage_router_escalations_total",),
    "utilisation": ("triage_router_agent_utilisation_ratio",),
    "presence": ("triage_router_agents",),
    "classification latency p50": (
        "histogram_quantile(0.5, sum by (le) (rate(triage_classifier_latency_seconds_bucket",
    ),
    "classification latency p95": (
        "histogram_quantile(0.95, sum by (le) (rate(triage_classifier_latency_seconds_bucket",
    ),
    "first response p50": (
        "histogram_quantile(0.5, sum by (le, channel) "
        "(rate(triage_router_time_to_first_response_seconds_bucket",
    ),
    "first response p90": (
        "histogram_quantile(0.9, sum by (le, channel) "
        "(rate(triage_router_time_to_first_response_seconds_bucket",
    ),
    "classifier dead letters": ("triage_classifier_dead_letters_total",),
    "router dead letters": ("triage_router_dead_letters_total",),
    "ingest requests": ("triage_ingest_requests_total",),
    "ingest 5xx": ('triage_ingest_requests_total{status=~"5..",',),
    "consumer lag": ("triage_consumer_lag_records",),
    "HTTP duration p95 by handler": (
        "histogram_quantile(0.95, sum by (le, job, handler) "
        "(rate(http_request_duration_seconds_bucket",
    ),
    "HTTP 5xx by handler": ('http_requests_total{status=~"5..",', "by (job, handler)"),
    "resident memory": ("process_resident_memory_bytes", "by (job, instance)"),
    "CPU": ("rate(process_cpu_seconds_total", "by (job, instance)"),
    "open file descriptors": ("process_open_fds", "process_max_fds"),
    "webhook deliveries": ("triage_webhook_deliveries_total", "by (subscription)"),
    "webhook failures": ("triage_webhook_delivery_failures_total", "by (subscription, error_type)"),
    "webhook dead letters": ("triage_webhook_dead_letters_total", "by (subscription"),
    "webhook oldest pending age": (
        "triage_webhook_oldest_pending_age_seconds",
        "by (subscription)",
    ),
}

# The trends dashboard: the console's Trends views and the worker's health. Each replica counts
# every message, so volumes are counted per instance and the replicas' common count is taken.
TRENDS_DASHBOARD_THEMES: dict[str, tuple[str, ...]] = {
    "stacked volumes by category": (
        "min by (category) (sum by (instance, category) (increase(triage_trends_messages_total",
    ),
    "volumes by channel": (
        "min by (channel) (sum by (instance, channel) (increase(triage_trends_messages_total",
    ),
    "sentiment share": (
        "min by (sentiment) (sum by (instance, sentiment) (increase(triage_trends_messages_total",
        "/ ignoring (sentiment) group_left min(sum by (instance) "
        "(increase(triage_trends_messages_total",
    ),
    "difficult-type mix": (
        "by (instance, difficult) (increase(triage_trends_difficult_messages_total",
    ),
    "active surges": ("max(triage_trends_active_surges",),
    "surges by category and channel": (
        "max by (category, channel) (increase(triage_trends_surges_total",
    ),
    "active emerging clusters": ("max(triage_trends_active_emerging_clusters",),
    "emerging clusters reported": ("increase(triage_trends_emerging_clusters_total",),
    "growth updates": ("increase(triage_trends_emerging_updates_total",),
    "clock lag": ("time() - triage_trends_clock_timestamp_seconds",),
}
THEMES = {"triage.json": DASHBOARD_THEMES, "trends.json": TRENDS_DASHBOARD_THEMES}

EXPECTED_ALERTS = {
    "ConsumerLagHigh",
    "ServiceLevelBelowTarget",
    "BreachesRising",
    "QueueOldestAgeHigh",
    "DeadLettersGrowing",
    "ServiceDown",
    "IngestBrokerDown",
    "NeedsReviewShareHigh",
    "IngestErrors",
    "RouterClockStalled",
    "WebhookDeadLetters",
    "WebhookDeliveryStalled",
}
# The trends worker's alerts (trends_alerts.yml, tested by tests/trends/test_alerts.py).
TRENDS_ALERTS = {"ComplaintSurge", "EmergingIssue", "TrendsStalled"}


def _promtool(promtool: str, *args: str) -> None:
    result = subprocess.run(
        [promtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"


@pytest.mark.timeout(600)
def test_prometheus_config_is_valid(promtool: str) -> None:
    # promtool resolves rule_files relative to the config file, so this checks alerts.yml too.
    _promtool(promtool, "check", "config", "deploy/prometheus/prometheus.yml")


@pytest.mark.timeout(600)
def test_alert_rules_are_valid(promtool: str) -> None:
    _promtool(promtool, "check", "rules", "deploy/prometheus/alerts.yml")


@pytest.mark.timeout(600)
def test_alert_rule_unit_tests_pass(promtool: str) -> None:
    _promtool(promtool, "test", "rules", "deploy/prometheus/alerts_test.yml")


def _rules(source: str = "alerts.yml") -> list[dict[str, Any]]:
    document: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / source).read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _all_rules() -> list[dict[str, Any]]:
    """The rules of every rule file prometheus.yml loads."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    return [rule for source in config["rule_files"] for rule in _rules(source)]


def _dashboard(name: str = "triage.json") -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DASHBOARD_DIR / name).read_text())
    return document


def _panel_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def _all_panel_exprs() -> list[str]:
    return [expr for name in DASHBOARDS for expr in _panel_exprs(_dashboard(name))]


def _registries() -> dict[str, CollectorRegistry]:
    """Each service's registry as its /metrics serves it: ingest's from its app, the router's
    with its agent API's HTTP metrics and the workers' lag collector, the webhook worker's with
    its lag gauges, the trends worker's."""
    router = RouterMetrics()
    router.watch(lambda: None)
    # The workers' lag collector, on a worker that reads nothing yet.
    idle = SimpleNamespace(
        monitor=SimpleNamespace(tp_end_offsets={}, tp_committed_offsets={}, tp_read_offsets={})
    )
    router.registry.register(ConsumerLagCollector(idle))
    create_api(SimpleNamespace(), registry=router.registry)
    ingest: CollectorRegistry = create_app().state.ingest.metrics.registry
    webhooks = WebhookMetrics()
    webhooks.watch(lambda: {"helpdesk": (0, 0.0)})
    return {
        "ingest": ingest,
        "classifier": ClassifierMetrics().registry,
        "router": router.registry,
        "webhooks": webhooks.registry,
        "trends": TrendsMetrics().registry,
    }


def _names(registry: CollectorRegistry) -> set[str]:
    names: set[str] = set()
    for family in registry.collect():
        # A counter's or histogram's family name is no series of its own: only suffixed.
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def _exposed_metric_names() -> set[str]:
    names = {"up"}
    for registry in _registries().values():
        names |= _names(registry)
    return names


def _runbook_anchors() -> dict[str, str]:
    """The anchor of each section of docs/runbooks.md (GitHub's heading slugs) and its text."""
    sections: dict[str, str] = {}
    for chunk in re.split(r"^## ", RUNBOOKS.read_text(), flags=re.MULTILINE)[1:]:
        heading, _, body = chunk.partition("\n")
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        sections[slug] = body
    return sections


def test_alerts_have_severity_duration_and_annotations() -> None:
    rules = _rules()
    assert {rule["alert"] for rule in rules} == EXPECTED_ALERTS
    for rule in rules:
        name = rule["alert"]
        assert rule.get("for"), name
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"], name
        assert "{{" in rule["annotations"]["description"], name
    for rule in rules:
        if rule["alert"] in ("ServiceLevelBelowTarget", "BreachesRising"):
            assert "$labels.channel" in rule["annotations"]["description"]
        if rule["alert"] == "QueueOldestAgeHigh":
            assert "$labels.team" in rule["annotations"]["description"]
        if rule["alert"].startswith("Webhook"):
            # A webhook alert is about one receiver: it names the subscription at fault.
            assert "$labels.subscription" in rule["annotations"]["description"]
            assert "subscription" in rule["expr"]
    severities = {
        rule["labels"]["severity"] for rule in rules if rule["alert"] == "QueueOldestAgeHigh"
    }
    assert severities == {"warning", "critical"}


def test_every_alert_links_its_runbook_section() -> None:
    sections = _runbook_anchors()
    rules = _all_rules()
    assert {rule["alert"] for rule in rules} == EXPECTED_ALERTS | TRENDS_ALERTS
    for rule in rules:
        url: str = rule["annotations"].get("runbook_url", "")
        # Relative to the repository root; deployments rewrite the part before `#`.
        assert url.startswith(RUNBOOK_PREFIX), rule["alert"]
        anchor = url.removeprefix(RUNBOOK_PREFIX)
        assert anchor == rule["alert"].lower(), rule["alert"]
        assert anchor in sections, f"docs/runbooks.md has no section #{anchor}"
    # One section per alert (besides the introduction), none for an alert that is gone.
    assert set(sections) - {"before-you-start"} == {
        name.lower() for name in EXPECTED_ALERTS | TRENDS_ALERTS
    }


@pytest.mark.parametrize("alert", sorted(EXPECTED_ALERTS | TRENDS_ALERTS))
def test_each_runbook_says_what_to_check_and_do(alert: str) -> None:
    body = _runbook_anchors()[alert.lower()]
    for part in ("**Means.**", "**Confirm.**", "**Likely causes.**", "**Do.**", "**Escalate**"):
        assert part in body, f"{alert}: no {part}"
    # Confirming means a query, an endpoint or a log line the paged engineer can run or grep.
    assert METRIC_NAME.search(body) or "up{" in body, alert


def test_runbooks_name_only_real_commands() -> None:
    text = RUNBOOKS.read_text()
    commands = set(re.findall(r"`triage ([a-z-]+)", text))
    assert commands, "the runbooks name no triage command"
    assert commands <= set(main.commands), sorted(commands - set(main.commands))
    for path in re.findall(r"\]\((?!https?:)([^)#]+)", text):
        assert (RUNBOOKS.parent / path).exists(), path


@pytest.mark.parametrize("source", ["alerts", *DASHBOARDS, "runbooks"])
def test_every_referenced_metric_is_exposed(source: str) -> None:
    if source == "alerts":
        exprs = [rule["expr"] for rule in _all_rules()]
    elif source in DASHBOARDS:
        exprs = _panel_exprs(_dashboard(source))
    else:
        exprs = [RUNBOOKS.read_text()]
    known = _exposed_metric_names()
    referenced = {name for expr in exprs for name in METRIC_NAME.findall(expr)} - LABEL_VALUES
    assert referenced, source
    assert referenced <= known, f"unknown metrics in {source}: {sorted(referenced - known)}"


def test_both_apis_expose_http_durations_and_every_service_its_process() -> None:
    names = {job: _names(registry) for job, registry in _registries().items()}
    for job in ("ingest", "router"):
        assert {"http_request_duration_seconds_bucket", "http_requests_total"} <= names[job], job
    for job, exposed in names.items():
        assert {"process_resident_memory_bytes", "process_cpu_seconds_total"} <= exposed, job


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboard_is_complete(name: str) -> None:
    dashboard = _dashboard(name)
    assert (dashboard["uid"], dashboard["title"]) == DASHBOARDS[name]
    assert dashboard["schemaVersion"] == 39
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        assert panel.get("title"), panel
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target.get("datasource", DATASOURCE) == DATASOURCE, panel["title"]
    exprs = _panel_exprs(dashboard)
    for theme, fragments in THEMES[name].items():
        assert any(all(f in expr for f in fragments) for expr in exprs), theme


def test_the_trends_dashboard_draws_every_trends_metric_and_counts_each_message_once() -> None:
    exprs = _panel_exprs(_dashboard("trends.json"))
    exported = {
        name
        for name in _names(TrendsMetrics().registry)
        if name.startswith("triage_trends_") and not name.endswith("_created")
    }
    drawn = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert drawn == exported, sorted(exported ^ drawn)
    for expr in exprs:
        # Every replica counts every message and raises every surge: a sum across instances
        # would count each as often as there are replicas.
        for grouping in re.findall(r"\bsum(?: by \(([^)]*)\))?", expr):
            assert "instance" in grouping, expr
        assert expr.startswith(("min", "max", "sum by (instance")), expr


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboard_has_datasource_job_and_instance_variables(name: str) -> None:
    variables = {v["name"]: v for v in _dashboard(name)["templating"]["list"]}
    assert set(variables) == {"datasource", "job", "instance"}
    datasource = variables["datasource"]
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"
    # No uid of one Grafana: an empty current value falls to the default Prometheus.
    assert "uid" not in json.dumps(datasource)
    for name in ("job", "instance"):
        variable = variables[name]
        assert variable["type"] == "query", name
        assert variable["datasource"] == DATASOURCE, name
        assert variable["multi"] is True, name
        assert variable["includeAll"] is True, name
        assert variable["definition"].startswith("label_values("), name
        assert variable["definition"].endswith(f", {name})"), name
        assert variable["query"]["query"] == variable["definition"], name
    # Instances follow the jobs chosen.
    assert '"$job"' in variables["instance"]["definition"]


def test_every_dashboard_selector_is_scoped_to_the_chosen_jobs() -> None:
    selectors = [
        (match.group(1), match.group(2) or "")
        for expr in _all_panel_exprs()
        for match in SELECTOR.finditer(expr)
    ]
    assert len(selectors) > 45
    for name, matchers in selectors:
        for scope in SCOPE:
            assert scope in matchers, f"{name}{matchers} lacks {scope}"


@pytest.mark.timeout(600)
def test_dashboard_expressions_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    # promtool parses each expression as a recording rule, with Grafana's variables as values.
    values = {
        "$__rate_interval": "1m",
        "$__interval": "5m",
        "$__range": "6h",
        "$job": "ingest|router",
        "$instance": ".+",
    }
    rules = []
    for n, expr in enumerate(_all_panel_exprs()):
        for variable, value in values.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:panel_{n}", "expr": expr})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    _promtool(promtool, "check", "rules", str(path))


def test_grafana_provisioning_points_at_prometheus_and_the_dashboards() -> None:
    datasources = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    (source,) = datasources["datasources"]
    assert source["uid"] == "prometheus"
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml").read_text()
    )
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    # The provider loads every file of the folder compose mounts there: these dashboards.
    assert {p.name for p in DASHBOARD_DIR.iterdir()} == set(DASHBOARDS)
    grafana = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["grafana"]
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]
    uids = [_dashboard(name)["uid"] for name in DASHBOARDS]
    assert len(set(uids)) == len(uids)


def _dashboard_config_maps(path: Path = DASHBOARD_CONFIG_MAPS) -> dict[str, dict[str, Any]]:
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    return {doc["metadata"]["name"]: doc for doc in documents}


def test_the_operator_overlay_ships_every_dashboard_to_grafanas_sidecar() -> None:
    checked = subprocess.run(
        [sys.executable, str(DASHBOARD_GENERATOR), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    kustomization = yaml.safe_load((OPERATOR_OVERLAY / "kustomization.yaml").read_text())
    assert DASHBOARD_CONFIG_MAPS.name in kustomization["resources"]
    config_maps = _dashboard_config_maps()
    shipped: dict[str, str] = {}
    for name, config_map in config_maps.items():
        assert (config_map["apiVersion"], config_map["kind"]) == ("v1", "ConfigMap"), name
        # The label kube-prometheus-stack's sidecar selects by default.
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1", name
        ((key, text),) = config_map["data"].items()
        assert name == f"triage-dashboard-{Path(key).stem}"
        shipped[key] = text
    # Exactly what compose's Grafana loads, byte for byte.
    assert shipped == {name: (DASHBOARD_DIR / name).read_text() for name in DASHBOARDS}


def test_the_dashboard_generator_reports_a_stale_config_map(tmp_path: Path) -> None:
    # The same layout in a scratch tree, with a dashboard changed after the maps were generated.
    overlay = tmp_path / OPERATOR_OVERLAY.relative_to(ROOT)
    overlay.mkdir(parents=True)
    shutil.copy(DASHBOARD_GENERATOR, overlay)
    shutil.copy(DASHBOARD_CONFIG_MAPS, overlay)
    dashboards = tmp_path / DASHBOARD_DIR.relative_to(ROOT)
    shutil.copytree(DASHBOARD_DIR, dashboards)
    trends = dashboards / "trends.json"
    changed = trends.read_text().replace('"now-24h"', '"now-12h"', 1)
    assert changed != trends.read_text()
    trends.write_text(changed)

    def generator(*args: str) -> int:
        command = [sys.executable, str(overlay / DASHBOARD_GENERATOR.name), *args]
        return subprocess.run(command, capture_output=True, timeout=60, check=False).returncode

    assert generator("--check") == 1
    assert generator() == 0
    assert generator("--check") == 0
    regenerated = _dashboard_config_maps(overlay / DASHBOARD_CONFIG_MAPS.name)
    assert regenerated["triage-dashboard-trends"]["data"]["trends.json"] == changed


def test_prometheus_scrapes_the_five_services() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert config["global"]["scrape_interval"] == "15s"
    assert config["rule_files"] == ["alerts.yml", "trends_alerts.yml"]
    targets = {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets == {
        "ingest": ["ingest:8080"],
        "classifier": ["classifier:8081"],
        "router": ["router:8082"],
        "webhooks": ["webhooks:8083"],
        "trends": ["trends:8084"],
    }


def test_compose_runs_prometheus_and_grafana() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    prometheus, grafana = services["prometheus"], services["grafana"]
    assert prometheus["image"] == "prom/prometheus:v3.5.0"
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    # Not the trends worker: Prometheus would wait for its replay of up to 7 days of history.
    assert set(prometheus["depends_on"]) == {"ingest", "classifier", "router", "webhooks"}
    assert "/-/ready" in " ".join(prometheus["healthcheck"]["test"])
    assert grafana["image"] == "grafana/grafana:12.1.0"
    assert grafana["depends_on"] == {"prometheus": {"condition": "service_healthy"}}
    assert "/api/health" in " ".join(grafana["healthcheck"]["test"])
    password = grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?.+\}", password)
