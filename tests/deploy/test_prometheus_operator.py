"""The Prometheus Operator overlay (deploy/k8s/overlays/prometheus-operator): PodMonitors that
scrape the five services under the job names the alerts use, and PrometheusRules that are
the rule files of deploy/prometheus (alerts.yml, trends_alerts.yml) with their runbook links
pointed where the overlay says.

kubernetes-validate bundles no schemas of the operator's custom resources, and their API server
drops unknown fields without a word, so the objects are checked here: against the fields of
`monitoring.coreos.com/v1` they may use, against the base's pods, and through promtool.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "prometheus-operator"
GENERATOR = OVERLAY / "generate_rule.py"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
# PrometheusRule → the rule file it carries: every file prometheus.yml loads, none left out.
RULE_FILES = {"triage-alerts": "alerts.yml", "triage-trends-alerts": "trends_alerts.yml"}
API_VERSION = "monitoring.coreos.com/v1"
# Set at runtime by each router pod on itself: a selector on it would miss the standby.
ROLE_LABEL = "complaint-triage/role"

# Deployment → the job its metrics must carry (alerts.yml, prometheus.yml, the dashboard).
JOBS = {
    "triage-ingest": "ingest",
    "triage-classifier": "classifier",
    "triage-router": "router",
    "triage-webhooks": "webhooks",
    "triage-trends": "trends",
}

# Fields of the operator's PodMonitor (v1) these objects may use.
POD_MONITOR_SPEC = {
    "jobLabel",
    "selector",
    "namespaceSelector",
    "podMetricsEndpoints",
    "podTargetLabels",
    "sampleLimit",
}
POD_METRICS_ENDPOINT = {
    "port",
    "path",
    "scheme",
    "interval",
    "scrapeTimeout",
    "honorLabels",
    "relabelings",
    "metricRelabelings",
}

Manifest = dict[str, Any]


def _load(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _kustomization() -> Manifest:
    (document,) = _load(OVERLAY / "kustomization.yaml")
    return document


def _pod_monitors() -> list[Manifest]:
    return _load(OVERLAY / "podmonitors.yaml")


def _rules() -> dict[str, Manifest]:
    return {rule["metadata"]["name"]: rule for rule in _load(OVERLAY / "prometheusrule.yaml")}


def _base_deployments() -> dict[str, Manifest]:
    (base,) = _load(BASE / "kustomization.yaml")
    documents = [doc for name in base["resources"] for doc in _load(BASE / name)]
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}


def _alert_groups(name: str = "triage-alerts") -> list[Manifest]:
    """The groups of the rule file the PrometheusRule ``name`` carries."""
    groups: list[Manifest] = yaml.safe_load((PROMETHEUS_DIR / RULE_FILES[name]).read_text())[
        "groups"
    ]
    return groups


def _runbook_urls(groups: list[Manifest]) -> dict[str, set[str]]:
    urls: dict[str, set[str]] = {}
    for group in groups:
        for rule in group["rules"]:
            urls.setdefault(rule["alert"], set()).add(rule["annotations"]["runbook_url"])
    return urls


def _kustomize_build(target: Path) -> list[Manifest]:
    kustomize, kubectl = shutil.which("kustomize"), shutil.which("kubectl")
    if kustomize:
        command = [kustomize, "build", str(target)]
    elif kubectl:
        command = [kubectl, "kustomize", str(target)]
    else:
        # As in test_k8s.py: no registry reachable here ships a recent enough kustomize.
        pytest.skip("kustomize build needs kubectl or kustomize, and neither is installed")
    built = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert built.returncode == 0, built.stderr
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc is not None]


def test_the_overlay_is_the_base_plus_the_operator_objects() -> None:
    kustomization = _kustomization()
    assert kustomization["namespace"] == "triage"
    resources = kustomization["resources"]
    assert resources == [
        "../../base",
        "podmonitors.yaml",
        "prometheusrule.yaml",
        # Grafana's dashboards, for its sidecar: tests/deploy/test_monitoring.py checks them.
        "grafana-dashboards.yaml",
    ]
    present = {p.name for p in OVERLAY.glob("*.yaml")} - {"kustomization.yaml"}
    assert present == set(resources[1:])
    assert any(
        entry["pairs"].get("app.kubernetes.io/part-of") == "complaint-triage"
        and entry.get("includeSelectors") is False
        for entry in kustomization["labels"]
    )


def test_the_rule_is_generated_from_the_alerts() -> None:
    checked = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    rules = _rules()
    assert list(rules) == list(RULE_FILES)
    # Every rule file Prometheus loads in compose is carried, so both deployments alert alike.
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"] == list(RULE_FILES.values())
    for name, rule in rules.items():
        assert rule["apiVersion"] == API_VERSION
        assert rule["kind"] == "PrometheusRule"
        assert set(rule["spec"]) == {"groups"}
        assert rule["spec"]["groups"] == _alert_groups(name), name


def test_the_generator_reports_a_stale_rule(tmp_path: Path) -> None:
    # The same layout in a scratch tree, with an alert changed after the rule was generated.
    overlay = tmp_path / OVERLAY.relative_to(ROOT)
    overlay.mkdir(parents=True)
    shutil.copy(GENERATOR, overlay)
    shutil.copy(OVERLAY / "prometheusrule.yaml", overlay)
    prometheus = tmp_path / PROMETHEUS_DIR.relative_to(ROOT)
    prometheus.mkdir(parents=True)
    for source in RULE_FILES.values():
        shutil.copy(PROMETHEUS_DIR / source, prometheus)
    # The trends rules changed after the rule was generated (either file must be caught).
    trends = prometheus / RULE_FILES["triage-trends-alerts"]
    changed = trends.read_text().replace("for: 10m", "for: 11m", 1)
    assert changed != trends.read_text()
    trends.write_text(changed)

    def generator(*args: str) -> int:
        command = [sys.executable, str(overlay / GENERATOR.name), *args]
        return subprocess.run(command, capture_output=True, timeout=60, check=False).returncode

    assert generator("--check") == 1
    assert generator() == 0
    assert generator("--check") == 0
    regenerated = {d["metadata"]["name"]: d for d in _load(overlay / "prometheusrule.yaml")}
    for name, source in RULE_FILES.items():
        expected = yaml.safe_load((prometheus / source).read_text())["groups"]
        assert regenerated[name]["spec"]["groups"] == expected, name


@pytest.mark.timeout(600)
def test_the_rule_groups_pass_promtool(promtool: str, tmp_path: Path) -> None:
    paths = []
    for name, rule in _rules().items():
        path = tmp_path / f"{name}.yml"
        path.write_text(yaml.safe_dump(rule["spec"]))
        paths.append(str(path))
    checked = subprocess.run(
        [promtool, "check", "rules", *paths],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_pod_monitors_scrape_each_service_under_its_job() -> None:
    monitors = _pod_monitors()
    deployments = _base_deployments()
    assert {m["metadata"]["name"] for m in monitors} == set(deployments) == set(JOBS)
    interval = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["global"]["scrape_interval"]
    for monitor in monitors:
        name = monitor["metadata"]["name"]
        assert monitor["apiVersion"] == API_VERSION, name
        assert monitor["kind"] == "PodMonitor", name
        spec = monitor["spec"]
        assert set(spec) <= POD_MONITOR_SPEC, f"{name}: unknown {set(spec) - POD_MONITOR_SPEC}"
        template = deployments[name]["spec"]["template"]
        labels: dict[str, str] = template["metadata"]["labels"]
        selector: dict[str, str] = spec["selector"]["matchLabels"]
        assert set(spec["selector"]) == {"matchLabels"}, name
        assert ROLE_LABEL not in selector, f"{name} would miss the standby"
        selected = [
            other
            for other, deployment in deployments.items()
            if all(
                deployment["spec"]["template"]["metadata"]["labels"].get(k) == v
                for k, v in selector.items()
            )
        ]
        assert selected == [name], f"{name} selects {selected}"
        # The job is the value of the pod label jobLabel names.
        assert labels[spec["jobLabel"]] == JOBS[name], name
        (endpoint,) = spec["podMetricsEndpoints"]
        assert set(endpoint) <= POD_METRICS_ENDPOINT, f"{name}: unknown {set(endpoint)}"
        container = template["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        annotations = template["metadata"]["annotations"]
        assert endpoint["port"] in ports, f"{name} has no port {endpoint['port']}"
        assert ports[endpoint["port"]] == int(annotations["prometheus.io/port"]), name
        assert endpoint["path"] == annotations["prometheus.io/path"] == "/metrics", name
        # The alerts' `for` durations count 15 s scrapes.
        assert endpoint["interval"] == interval, name


def test_the_jobs_are_the_ones_the_alerts_and_compose_use() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert {job["job_name"] for job in config["scrape_configs"]} == set(JOBS.values())
    (service_down,) = [
        rule
        for group in _alert_groups()
        for rule in group["rules"]
        if rule["alert"] == "ServiceDown"
    ]
    (jobs,) = re.findall(r'job=~"([^"]+)"', service_down["expr"])
    assert set(jobs.split("|")) == set(JOBS.values())


def test_the_built_overlay_carries_the_monitors_and_the_rule() -> None:
    documents = _kustomize_build(OVERLAY)
    operator = [d for d in documents if d["apiVersion"] == API_VERSION]
    kinds = sorted(d["kind"] for d in operator)
    assert kinds == ["PodMonitor"] * len(JOBS) + ["PrometheusRule"] * len(RULE_FILES)
    for document in operator:
        assert document["metadata"]["namespace"] == "triage", document["metadata"]["name"]
        labels = document["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "complaint-triage"
    # The runbook setting is local configuration: read by kustomize, never applied.
    assert not [d for d in documents if d["metadata"]["name"] == "triage-runbooks"]
    rules = {d["metadata"]["name"]: d for d in operator if d["kind"] == "PrometheusRule"}
    assert set(rules) == set(RULE_FILES)
    for name, rule in rules.items():
        assert rule["spec"]["groups"] == _alert_groups(name), name


@pytest.mark.parametrize("how", ["edit the overlay", "overlay on top"])
def test_the_runbook_base_rewrites_every_link(how: str, tmp_path: Path) -> None:
    base = "https://git.example.com/complaint-triage/-/blob/main/docs/runbooks.md"
    k8s = tmp_path / "k8s"
    shutil.copytree(K8S, k8s)
    copy = k8s / OVERLAY.relative_to(K8S)
    if how == "edit the overlay":
        kustomization = copy / "kustomization.yaml"
        text = kustomization.read_text()
        assert text.count("RUNBOOK_BASE=docs/runbooks.md") == 1
        kustomization.write_text(
            text.replace("RUNBOOK_BASE=docs/runbooks.md", f"RUNBOOK_BASE={base}")
        )
        target = copy
    else:
        # What an operator's own overlay does (docs/operations.md, "Runbook links").
        own = _kustomization()
        target = k8s / "overlays" / "ours"
        target.mkdir()
        (generator,) = own["configMapGenerator"]
        generator = {**generator, "name": "our-runbooks", "literals": [f"RUNBOOK_BASE={base}"]}
        (replacement,) = own["replacements"]
        replacement = {**replacement, "source": {**replacement["source"], "name": "our-runbooks"}}
        ours = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": ["../prometheus-operator"],
            "configMapGenerator": [generator],
            "replacements": [replacement],
        }
        (target / "kustomization.yaml").write_text(yaml.safe_dump(ours))
    rules = {
        d["metadata"]["name"]: d for d in _kustomize_build(target) if d["kind"] == "PrometheusRule"
    }
    assert set(rules) == set(RULE_FILES)
    for name, rule in rules.items():
        urls = _runbook_urls(rule["spec"]["groups"])
        assert set(urls) == set(_runbook_urls(_alert_groups(name))), name
        for alert, links in urls.items():
            assert links == {f"{base}#{alert.lower()}"}, alert
        # Only the links change.
        for built, source in zip(rule["spec"]["groups"], _alert_groups(name), strict=True):
            for built_rule, source_rule in zip(built["rules"], source["rules"], strict=True):
                built_rule["annotations"].pop("runbook_url")
                source_rule["annotations"].pop("runbook_url")
                assert built_rule == source_rule
