"""Who may do what on Kafka: the ACLs of deploy/k8s/kafka, docs/kafka-security.md and the
clients' TLS and SASL settings in the Kubernetes base agree, and no service can write a topic
it does not own (the router trusts the `actor` of every command on router.inbox)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.common.kafka import KafkaSettings
from services.common.topics import ALL_TOPICS

ROOT = Path(__file__).parents[2]
USERS = ROOT / "deploy" / "k8s" / "kafka" / "kafka-users.yaml"
DOC = ROOT / "docs" / "kafka-security.md"
BASE = ROOT / "deploy" / "k8s" / "base"

# The one principal allowed to write each topic of the product.
WRITER = {
    "feedback.received": "triage-ingest",
    "feedback.received.dlq": "triage-classifier",
    "feedback.classified": "triage-classifier",
    "feedback.classified.dlq": "triage-router",
    "router.inbox": "triage-router",
    "router.inbox.dlq": "triage-router",
    "cases.events": "triage-router",
    "agents.events": "triage-router",
    "feedback.corrections": "triage-router",
    "webhooks.dlq": "triage-webhooks",
    "trends.surges": "triage-trends",
    "trends.emerging": "triage-trends",
}
# Each faust worker's consumer group and internal topics (table changelogs, leader topic) are
# named after its app id (TRIAGE_<SERVICE>_APP_ID, the deployment's name by default).
FAUST_WORKERS = {"triage-classifier", "triage-router"}
# The webhook worker's consumer groups, one per subscription: "<principal>." + subscription id.
GROUP_PREFIX_OWNERS = {"triage-webhooks"}
# Operations no service needs on a shared cluster.
FORBIDDEN = {"All", "Alter", "AlterConfigs", "Delete", "ClusterAction", "DescribeConfigs"}

Acl = tuple[str, str, str, str, str]  # principal, resource type, pattern type, name, operation


def _users() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(USERS.read_text()) if doc is not None]


def _manifest_acls() -> set[Acl]:
    acls: set[Acl] = set()
    for user in _users():
        principal = user["metadata"]["name"]
        for acl in user["spec"]["authorization"]["acls"]:
            resource = acl["resource"]
            for operation in acl["operations"]:
                acls.add(
                    (
                        principal,
                        resource["type"],
                        resource.get("patternType", "literal"),
                        resource["name"],
                        operation,
                    )
                )
    return acls


def _documented_acls() -> set[Acl]:
    """The rows of the document's table: | `User:x` | topic/topic prefix/group | `name` | ops |."""
    row = re.compile(r"^\|\s*`User:([^`]+)`\s*\|\s*([a-z ]+?)\s*\|\s*`([^`]+)`\s*\|([^|]+)\|")
    acls: set[Acl] = set()
    for line in DOC.read_text().splitlines():
        match = row.match(line)
        if match is None:
            continue
        principal, resource, name, operations = match.groups()
        kind, _, pattern = resource.partition(" ")
        for operation in operations.split(","):
            acls.add((principal, kind, pattern or "literal", name, operation.strip()))
    return acls


def test_only_the_owner_of_a_topic_may_write_it() -> None:
    acls = _manifest_acls()
    for spec in ALL_TOPICS:
        writers = {
            principal
            for principal, kind, pattern, name, operation in acls
            if kind == "topic" and operation == "Write" and spec.name.startswith(name)
            if pattern == "prefix" or name == spec.name
        }
        assert writers == {WRITER[spec.name]}, f"{spec.name} is writable by {sorted(writers)}"
    assert {spec.name for spec in ALL_TOPICS} == set(WRITER)


def test_no_wildcards_and_no_administrative_rights() -> None:
    for principal, kind, pattern, name, operation in _manifest_acls():
        where = f"{principal} {operation} on {kind} {name}"
        assert kind in ("topic", "group"), where  # no cluster or transactional-id grants
        assert "*" not in name, where
        assert operation not in FORBIDDEN, where
        if pattern == "prefix" and kind == "group":
            # Only the webhook worker's own per-subscription groups.
            assert principal in GROUP_PREFIX_OWNERS, where
            assert name == f"{principal}.", where
        elif pattern == "prefix":
            # Only a faust worker's own internal topics, named after its app id.
            assert kind == "topic", where
            assert name == f"{principal}-", where
    for user in _users():
        assert user["kind"] == "KafkaUser"
        assert user["apiVersion"] == "kafka.strimzi.io/v1beta2"
        assert user["metadata"]["labels"]["strimzi.io/cluster"]
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        assert user["spec"]["authorization"]["type"] == "simple"


def test_faust_workers_own_their_group_and_internal_topics() -> None:
    acls = _manifest_acls()
    for worker in FAUST_WORKERS:
        assert (worker, "group", "literal", worker, "Read") in acls
        for operation in ("Read", "Write", "Describe", "Create"):
            assert (worker, "topic", "prefix", f"{worker}-", operation) in acls
    owners = FAUST_WORKERS | GROUP_PREFIX_OWNERS
    assert not any(kind == "group" and p not in owners for p, kind, *_ in acls)


def test_the_document_lists_exactly_the_acls_shipped() -> None:
    documented = _documented_acls()
    assert documented, "docs/kafka-security.md has no ACL table"
    assert documented == _manifest_acls()


def _deployments() -> list[dict[str, Any]]:
    documents = []
    for path in sorted(BASE.glob("*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return [d for d in documents if d["kind"] == "Deployment"]


def _config() -> dict[str, str]:
    (config,) = yaml.safe_load_all((BASE / "configmap.yaml").read_text())
    data: dict[str, str] = config["data"]
    return data


@pytest.mark.parametrize(
    "name", ["triage-ingest", "triage-classifier", "triage-router", "triage-webhooks"]
)
def test_each_service_signs_in_as_its_own_principal_over_tls(name: str) -> None:
    (deployment,) = [d for d in _deployments() if d["metadata"]["name"] == name]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {v["name"]: v for v in container["env"]}
    assert env["TRIAGE_KAFKA_SASL_USERNAME"]["value"] == name
    password = env["TRIAGE_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password == {"name": f"triage-kafka-{name.removeprefix('triage-')}", "key": "password"}
    config = _config()
    cafile = config["TRIAGE_KAFKA_SSL_CAFILE"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    (mount,) = [m for path, m in mounts.items() if cafile.startswith(path.rstrip("/") + "/")]
    assert mount.get("readOnly") is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == "triage-kafka-ca"
    assert cafile.endswith("/" + volume["secret"]["items"][0]["path"])
    # The settings the services load from this environment.
    settings = KafkaSettings.model_validate(
        {
            "bootstrap": config["TRIAGE_KAFKA_BOOTSTRAP"],
            "security_protocol": config["TRIAGE_KAFKA_SECURITY_PROTOCOL"],
            "sasl_mechanism": config["TRIAGE_KAFKA_SASL_MECHANISM"],
            "sasl_username": name,
            "sasl_password": "from-the-secret",
            "ssl_cafile": cafile,
        }
    )
    assert settings.security_protocol == "SASL_SSL"
    assert settings.sasl_mechanism == "SCRAM-SHA-512"
    kafka_user = {u["metadata"]["name"]: u for u in _users()}
    assert name in kafka_user, f"no KafkaUser for {name}"
