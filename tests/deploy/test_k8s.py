"""The Kubernetes manifests (deploy/k8s) are valid and their references resolve."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from services.cli import main
from services.common.topics import ALL_TOPICS

ROOT = Path(__file__).parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAYS = sorted(p.parent for p in (K8S / "overlays").glob("*/kustomization.yaml"))

# Kubernetes version whose OpenAPI schemas (bundled in kubernetes-validate) the manifests must pass.
K8S_VERSION = "1.30.0"
# The API group of the Prometheus Operator's custom resources (overlays/prometheus-operator).
OPERATOR_API_GROUP = "monitoring.coreos.com"

# Secrets the operator creates (deploy/k8s/README.md); the base holds no Secret objects.
OPERATOR_SECRETS: dict[str, set[str]] = {
    "triage-ingest": {"api-keys", "hmac-secrets"},
    "triage-roster": {"roster.yaml"},
    "triage-webhooks": {"webhooks.yaml"},
    # Optional: the signing secrets subscriptions name by `secret_env`, any keys (envFrom).
    "triage-webhook-secrets": set(),
    # Kafka: each service's SCRAM password and the cluster CA (docs/kafka-security.md).
    "triage-kafka-ingest": {"password"},
    "triage-kafka-classifier": {"password"},
    "triage-kafka-router": {"password"},
    "triage-kafka-webhooks": {"password"},
    "triage-kafka-trends": {"password"},
    "triage-kafka-ca": {"ca.crt"},
}

# Set at runtime by each router pod on itself (router_role.py), so in no pod template.
ROLE_LABEL = "complaint-triage/role"

# Per service: the `triage` subcommand, its port and the resource requests asked for.
SERVICES: dict[str, dict[str, Any]] = {
    "triage-ingest": {"command": "ingest", "port": 8080, "cpu": "500m", "memory": "512Mi"},
    "triage-classifier": {"command": "classifier", "port": 8081, "cpu": "2", "memory": "3Gi"},
    "triage-router": {"command": "router", "port": 8082, "cpu": "500m", "memory": "1Gi"},
    "triage-webhooks": {"command": "webhooks", "port": 8083, "cpu": "100m", "memory": "256Mi"},
    "triage-trends": {"command": "trends", "port": 8084, "cpu": "250m", "memory": "512Mi"},
}

Manifest = dict[str, Any]


def _load(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _kustomization() -> Manifest:
    (document,) = _load(BASE / "kustomization.yaml")
    return document


def _manifests() -> list[Manifest]:
    return [doc for name in _kustomization()["resources"] for doc in _load(BASE / name)]


def _of_kind(kind: str) -> list[Manifest]:
    return [doc for doc in _manifests() if doc["kind"] == kind]


def _deployment(name: str) -> Manifest:
    (deployment,) = [d for d in _of_kind("Deployment") if d["metadata"]["name"] == name]
    return deployment


def _container(deployment: Manifest) -> Manifest:
    """The service's container (the first; the router's pod also has its `role` container)."""
    container: Manifest = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def _port_of(container: Manifest, port: int | str) -> int:
    """The container port number a probe or Service port refers to (by name or number)."""
    for declared in container.get("ports", []):
        if port in (declared["containerPort"], declared.get("name")):
            number: int = declared["containerPort"]
            return number
    raise AssertionError(f"{container['name']} declares no port {port!r}")


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _validate(document: Manifest) -> None:
    name = f"{document.get('kind')}/{document.get('metadata', {}).get('name')}"
    try:
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.path)
        pytest.fail(f"{name} is invalid for Kubernetes {K8S_VERSION} at {path}: {exc.message}")


def test_every_yaml_parses() -> None:
    files = sorted(K8S.rglob("*.yaml"))
    assert files
    for path in files:
        for document in _load(path):
            assert isinstance(document, dict), path
            assert "apiVersion" in document, path
            assert "kind" in document, path


def test_kustomization_lists_exactly_the_files_present() -> None:
    kustomization = _kustomization()
    resources: list[str] = kustomization["resources"]
    assert len(resources) == len(set(resources)), "a resource is listed twice"
    for name in resources:
        assert (BASE / name).is_file(), f"{name} is listed but missing"
    present = {p.name for p in BASE.glob("*.yaml")} | {p.name for p in BASE.glob("*.yml")}
    assert set(resources) == present - {"kustomization.yaml"}


def test_kustomization_namespace_labels_and_image() -> None:
    kustomization = _kustomization()
    assert kustomization["namespace"] == "triage"
    (namespace,) = _of_kind("Namespace")
    assert namespace["metadata"]["name"] == "triage"
    assert any(
        entry["pairs"].get("app.kubernetes.io/part-of") == "complaint-triage"
        for entry in kustomization["labels"]
    )
    images = {entry["name"]: entry for entry in kustomization["images"]}
    assert images["complaint-triage"]["newTag"]
    for deployment in _of_kind("Deployment"):
        assert _container(deployment)["image"] in images


@pytest.mark.parametrize(
    "path",
    sorted(p for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml"),
    ids=lambda p: p.name if isinstance(p, Path) else str(p),
)
def test_manifests_pass_the_kubernetes_schemas(path: Path) -> None:
    documents = _load(path)
    assert documents, f"{path.name} is empty"
    for document in documents:
        _validate(document)


def test_the_validator_rejects_an_invalid_manifest() -> None:
    broken = _deployment("triage-ingest")
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    unknown_field = _deployment("triage-ingest")
    unknown_field["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown_field, K8S_VERSION, strict=True)


@pytest.mark.parametrize("target", [BASE, *OVERLAYS], ids=lambda p: str(p.relative_to(K8S)))
def test_kustomize_build_passes_the_kubernetes_schemas(target: Path) -> None:
    kubectl = shutil.which("kubectl")
    kustomize = shutil.which("kustomize")
    if kustomize:
        command = [kustomize, "build", str(target)]
    elif kubectl:
        command = [kubectl, "kustomize", str(target)]
    else:
        # No registry reachable here ships a kustomize that reads `labels:` (Debian's
        # kubernetes-client 1.20 predates it); each manifest is still schema-checked above.
        pytest.skip("kustomize build needs kubectl or kustomize, and neither is installed")
    built = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert built.returncode == 0, built.stderr
    documents = [doc for doc in yaml.safe_load_all(built.stdout) if doc is not None]
    assert {doc["kind"] for doc in documents} >= {"Namespace", "ConfigMap", "Deployment"}
    for document in documents:
        # The Prometheus Operator's resources have no schema here: test_prometheus_operator.py.
        if not document["apiVersion"].startswith(f"{OPERATOR_API_GROUP}/"):
            _validate(document)
        labels = document["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "complaint-triage", document
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == "triage", document


def test_no_secret_values_in_the_base() -> None:
    assert not _of_kind("Secret"), "Secrets are created by the operator (deploy/k8s/README.md)"


def test_config_and_secret_references_resolve() -> None:
    config_maps = {cm["metadata"]["name"]: cm.get("data", {}) for cm in _of_kind("ConfigMap")}
    for generator in _kustomization().get("configMapGenerator", []):
        for name in generator["files"]:
            assert (BASE / name).is_file(), f"{generator['name']} is generated from missing {name}"
        config_maps[generator["name"]] = {Path(name).name: "" for name in generator["files"]}
    secrets_used: set[str] = set()

    def check_config_map(name: str, key: str | None = None) -> None:
        assert name in config_maps, f"unknown ConfigMap {name}"
        assert key is None or key in config_maps[name], f"ConfigMap {name} has no {key}"

    def check_secret(name: str, key: str | None = None) -> None:
        assert name in OPERATOR_SECRETS, f"Secret {name} is neither defined nor operator-provided"
        assert key is None or key in OPERATOR_SECRETS[name], f"Secret {name} has no {key}"
        secrets_used.add(name)

    for deployment in _of_kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"] + pod.get("initContainers", []):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    check_config_map(source["configMapRef"]["name"])
                if "secretRef" in source:
                    check_secret(source["secretRef"]["name"])
            for variable in container.get("env", []):
                value_from = variable.get("valueFrom", {})
                if "configMapKeyRef" in value_from:
                    ref = value_from["configMapKeyRef"]
                    check_config_map(ref["name"], ref["key"])
                if "secretKeyRef" in value_from:
                    ref = value_from["secretKeyRef"]
                    check_secret(ref["name"], ref["key"])
            volumes = {volume["name"] for volume in pod.get("volumes", [])}
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{container['name']} mounts unknown {mount}"
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                for item in volume["configMap"].get("items", [None]):
                    check_config_map(volume["configMap"]["name"], item and item["key"])
            if "secret" in volume:
                for item in volume["secret"].get("items", [None]):
                    check_secret(volume["secret"]["secretName"], item and item["key"])
    assert secrets_used == set(OPERATOR_SECRETS)


def test_config_map_matches_the_production_settings() -> None:
    (config,) = [cm for cm in _of_kind("ConfigMap") if cm["metadata"]["name"] == "triage-config"]
    data: dict[str, Any] = config["data"]
    assert all(isinstance(value, str) for value in data.values()), "ConfigMap values are strings"
    assert data["TRIAGE_ENV"] == "production"
    assert data["TRIAGE_KAFKA_PROFILE"] == "kafka"
    assert data["TRIAGE_KAFKA_IDEMPOTENCE"] == "on"
    assert data["TRIAGE_KAFKA_CREATE_TOPICS"] == "false"
    assert int(data["TRIAGE_KAFKA_REPLICATION_FACTOR"]) >= 3
    assert data["TRIAGE_KAFKA_BOOTSTRAP"]
    for service in ("INGEST", "CLASSIFIER", "ROUTER", "WEBHOOKS", "TRENDS"):
        assert data[f"TRIAGE_{service}_LOG_FORMAT"] == "json"


def test_services_select_deployments_and_target_declared_ports() -> None:
    deployments = _of_kind("Deployment")
    services = _of_kind("Service")
    assert {s["metadata"]["name"] for s in services} == set(SERVICES)
    for deployment in deployments:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert _matches(deployment["spec"]["selector"]["matchLabels"], labels)
    for service in services:
        selector = {k: v for k, v in service["spec"]["selector"].items() if k != ROLE_LABEL}
        selected = [
            d
            for d in deployments
            if _matches(selector, d["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(selected) == 1, f"Service {service['metadata']['name']} selects {len(selected)}"
        container = _container(selected[0])
        for port in service["spec"]["ports"]:
            assert (
                _port_of(container, port.get("targetPort", port["port"]))
                == (SERVICES[selected[0]["metadata"]["name"]]["port"])
            )
    for budget in _of_kind("PodDisruptionBudget"):
        selector = budget["spec"]["selector"]["matchLabels"]
        assert any(
            _matches(selector, d["spec"]["template"]["metadata"]["labels"]) for d in deployments
        )


def test_service_ports() -> None:
    ports = {s["metadata"]["name"]: s["spec"]["ports"][0]["port"] for s in _of_kind("Service")}
    assert ports == {
        "triage-ingest": 80,
        "triage-router": 80,
        "triage-classifier": 8081,
        "triage-webhooks": 8083,
        "triage-trends": 8084,
    }


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_container_runs_an_existing_triage_subcommand(name: str) -> None:
    expected = SERVICES[name]
    container = _container(_deployment(name))
    args: list[str] = container.get("command", []) + container["args"]
    assert args[0] == "triage"
    assert args[1] in main.commands, f"`triage {args[1]}` does not exist"
    assert args[1] == expected["command"]
    assert args[args.index("--host") + 1] == "0.0.0.0"  # noqa: S104
    port = int(args[args.index("--port") + 1])
    assert port == expected["port"]
    assert _port_of(container, port) == port


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_probes_point_at_health_endpoints_on_the_container_port(name: str) -> None:
    container = _container(_deployment(name))
    port = SERVICES[name]["port"]
    expected = {
        "livenessProbe": "/healthz",
        # Every healthy router pod is Ready; the Service picks the active one by its role label.
        "readinessProbe": "/healthz" if name == "triage-router" else "/readyz",
        "startupProbe": "/healthz",
    }
    assert {"livenessProbe", "readinessProbe"} <= set(container)
    for probe_name, path in expected.items():
        probe = container.get(probe_name)
        if probe is None:
            continue
        assert probe["httpGet"]["path"] == path, probe_name
        assert _port_of(container, probe["httpGet"]["port"]) == port, probe_name
    if name == "triage-classifier":
        startup = container["startupProbe"]
        budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
        assert budget >= 60, "the model takes about 30 s to load"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_resources_annotations_and_security(name: str) -> None:
    deployment = _deployment(name)
    template = deployment["spec"]["template"]
    pod = template["spec"]
    container = _container(deployment)
    resources = container["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind]), f"{name} lacks {kind}"
    assert resources["requests"]["cpu"] == SERVICES[name]["cpu"]
    assert resources["requests"]["memory"] == SERVICES[name]["memory"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == SERVICES[name]["port"]
    assert _port_of(container, int(annotations["prometheus.io/port"])) == SERVICES[name]["port"]
    assert pod["terminationGracePeriodSeconds"] == 30
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    for each in pod["containers"]:
        assert each["securityContext"]["readOnlyRootFilesystem"] is True, each["name"]
        assert each["securityContext"]["allowPrivilegeEscalation"] is False, each["name"]
        assert each["securityContext"]["capabilities"]["drop"] == ["ALL"], each["name"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(each["resources"][kind]), each["name"]
    # The root filesystem is read-only: /tmp and every data directory are writable volumes.
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    for variable in container.get("env", []):
        if variable["name"].endswith("_DATA_DIR"):
            assert "emptyDir" in volumes[mounts[variable["value"]]], variable


def test_replicas_fit_the_topic_partitions() -> None:
    partitions = {spec.name: spec.partitions for spec in ALL_TOPICS}
    assert _deployment("triage-ingest")["spec"]["replicas"] == 2
    classifiers = _deployment("triage-classifier")["spec"]["replicas"]
    assert 1 <= classifiers <= partitions["feedback.received"]
    # router.inbox has one partition: one active router and one hot standby.
    assert partitions["router.inbox"] == 1
    assert _deployment("triage-router")["spec"]["replicas"] == 2
    # Trends workers read every partition without a group: replicas are full copies, any count.
    assert _deployment("triage-trends")["spec"]["replicas"] == 2


def test_one_webhook_worker_at_a_time() -> None:
    # Each worker reads every partition for every subscription (no shared consumer group): two
    # pods, even side by side during a rolling update, would post every event twice.
    deployment = _deployment("triage-webhooks")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert not [
        b
        for b in _of_kind("PodDisruptionBudget")
        if _matches(
            b["spec"]["selector"]["matchLabels"], deployment["spec"]["selector"]["matchLabels"]
        )
    ]


def test_webhooks_mount_the_subscriptions_file_from_its_secret() -> None:
    deployment = _deployment("triage-webhooks")
    container = _container(deployment)
    env = {v["name"]: v.get("value") for v in container["env"]}
    path = env["TRIAGE_WEBHOOKS_FILE"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == path]
    assert mount.get("readOnly") is True
    pod = deployment["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == "triage-webhooks"
    (item,) = volume["secret"]["items"]
    assert mount["subPath"] == item["path"]
    # Secrets named by `secret_env` come from an optional Secret: a file with the secrets
    # inline needs none, and a missing required Secret would keep the pod from starting.
    (secrets,) = [s["secretRef"] for s in container["envFrom"] if "secretRef" in s]
    assert secrets == {"name": "triage-webhook-secrets", "optional": True}


def test_router_mounts_the_roster_and_has_its_data_dir() -> None:
    container = _container(_deployment("triage-router"))
    env = {v["name"]: v.get("value") for v in container["env"]}
    assert env["TRIAGE_ROUTER_ROSTER_FILE"] == "/etc/triage/roster.yaml"
    assert env["TRIAGE_ROUTER_DATA_DIR"]
    pod = _deployment("triage-router")["spec"]["template"]["spec"]
    (roster,) = [
        m for m in container["volumeMounts"] if m["mountPath"] == "/etc/triage/roster.yaml"
    ]
    assert roster.get("readOnly") is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == roster["name"]]
    assert volume["secret"]["secretName"] == "triage-roster"
    classifier = _container(_deployment("triage-classifier"))
    assert any(v["name"] == "TRIAGE_CLASSIFIER_DATA_DIR" for v in classifier["env"])


def test_trends_mounts_the_routers_roster_and_rolls_out_without_a_gap() -> None:
    deployment = _deployment("triage-trends")
    container = _container(deployment)
    env = {v["name"]: v.get("value") for v in container["env"]}
    assert env["TRIAGE_TRENDS_ROSTER_FILE"] == "/etc/triage/roster.yaml"
    assert env["TRIAGE_KAFKA_SASL_USERNAME"] == "triage-trends"
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/etc/triage/roster.yaml"]
    assert mount.get("readOnly") is True
    pod = deployment["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    router = _deployment("triage-router")["spec"]["template"]["spec"]
    (router_volume,) = [v for v in router["volumes"] if v["name"] == "roster"]
    assert volume["secret"] == router_volume["secret"]
    # A new pod replays history before it is Ready; the old ones serve until then.
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    (service,) = [s for s in _of_kind("Service") if s["metadata"]["name"] == "triage-trends"]
    assert ROLE_LABEL not in service["spec"]["selector"], "every replica answers queries"


def test_readme_documents_the_operator_secrets_and_topics() -> None:
    readme = (K8S / "README.md").read_text()
    for secret, keys in OPERATOR_SECRETS.items():
        assert f"kubectl -n triage create secret generic {secret}" in readme, secret
        for key in keys:
            assert key in readme, key
    for spec in ALL_TOPICS:
        assert spec.name in readme, spec.name


def test_every_healthy_router_pod_is_ready_so_rollouts_finish() -> None:
    # A standby that fails readiness on purpose keeps the Deployment below its available
    # replicas for good: `kubectl rollout status` never returns and no budget can protect it.
    deployment = _deployment("triage-router")
    container = _container(deployment)
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert str(rolling["maxUnavailable"]) in ("0", "0%"), "a rollout keeps a Ready router"
    assert str(rolling["maxSurge"]) == "1"
    (budget,) = [
        b for b in _of_kind("PodDisruptionBudget") if b["metadata"]["name"] == "triage-router"
    ]
    assert budget["spec"]["maxUnavailable"] == 1


def test_agents_reach_only_the_active_router() -> None:
    deployment = _deployment("triage-router")
    (service,) = [s for s in _of_kind("Service") if s["metadata"]["name"] == "triage-router"]
    assert service["spec"]["selector"].get(ROLE_LABEL) == "active"
    # The pods change this label themselves: in the Deployment's selector it would orphan them.
    assert ROLE_LABEL not in deployment["spec"]["selector"]["matchLabels"]
    assert ROLE_LABEL not in deployment["spec"]["template"]["metadata"]["labels"]
    pod = deployment["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    role = containers["role"]
    assert role["image"] == _container(deployment)["image"]
    env = {v["name"]: v for v in role["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    ready_url = env["TRIAGE_ROLE_READY_URL"]["value"]
    assert ready_url == f"http://127.0.0.1:{SERVICES['triage-router']['port']}/readyz"
    # The script comes from a ConfigMap generated from deploy/k8s/base/router_role.py.
    mounts = {m["name"]: m for m in role["volumeMounts"]}
    script = next(arg for arg in role["command"] + role.get("args", []) if arg.endswith(".py"))
    (volume,) = [
        v
        for v in pod["volumes"]
        if "configMap" in v and script.startswith(mounts[v["name"]]["mountPath"])
    ]
    generated = {g["name"]: g for g in _kustomization()["configMapGenerator"]}
    files = generated[volume["configMap"]["name"]]["files"]
    assert Path(script).name in files
    assert (BASE / Path(script).name).is_file()


def test_only_the_role_container_holds_a_narrow_api_token() -> None:
    deployment = _deployment("triage-router")
    pod = deployment["spec"]["template"]["spec"]
    assert pod.get("automountServiceAccountToken") is False
    account = pod["serviceAccountName"]
    (service_account,) = [a for a in _of_kind("ServiceAccount") if a["metadata"]["name"] == account]
    assert service_account.get("automountServiceAccountToken") is False
    token_volumes = {
        v["name"]
        for v in pod["volumes"]
        if any("serviceAccountToken" in s for s in v.get("projected", {}).get("sources", []))
    }
    assert len(token_volumes) == 1
    for container in pod["containers"]:
        mounted = {m["name"] for m in container.get("volumeMounts", [])} & token_volumes
        assert mounted == (token_volumes if container["name"] == "role" else set()), container
    (binding,) = [b for b in _of_kind("RoleBinding") if b["metadata"]["name"] == account]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account}]
    (role,) = [r for r in _of_kind("Role") if r["metadata"]["name"] == binding["roleRef"]["name"]]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]}]
