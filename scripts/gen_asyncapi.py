"""Write docs/asyncapi/triage.yaml, the AsyncAPI 3.0 contract of every Kafka topic.

    python scripts/gen_asyncapi.py           # rewrite docs/asyncapi/triage.yaml
    python scripts/gen_asyncapi.py --check   # exit 1 when the file is stale

Channels come from the topic specs (``services/common/topics.py``), message payloads from the
pydantic models the services write (serialisation schemas, so a payload is described as it is
on the wire), and keys, headers and producers from the table below, which says what the code
does: change it with the code.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from services.common import topics  # noqa: E402
from services.common.cases import AgentNotice, CaseEvent  # noqa: E402
from services.common.messages import (  # noqa: E402
    Correction,
    DeadLetter,
    FeedbackClassified,
    FeedbackReceived,
)
from services.common.topics import TopicSpec  # noqa: E402
from services.common.trends import EmergingIssue, SurgeEvent  # noqa: E402
from services.router.commands import COMMAND_TYPES, CaseArrived, ClassifiedIn, Tick  # noqa: E402
from services.webhooks.models import WebhookDeadLetter  # noqa: E402

OUTPUT = ROOT / "docs" / "asyncapi" / "triage.yaml"
KAFKA_BINDINGS = "0.5.0"
SCHEMA_REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Key:
    """What a topic's records are keyed by."""

    description: str
    format: str | None = None


@dataclass(frozen=True)
class Topic:
    """One topic as the services use it."""

    spec: TopicSpec
    messages: tuple[type[BaseModel], ...]
    key: Key
    writer: str
    #: Who reads it (service names; 'operators' for dead letters, 'training' for
    #: `triage train --corrections` and `triage corrections`).
    readers: tuple[str, ...]
    #: The record headers the writer sets (name -> description); empty when it sets none.
    headers: tuple[str, ...] = ()


DEAD_LETTER_KEY = Key("The failed record's own key, cut to its first 1024 bytes (none if none).")

TOPICS: tuple[Topic, ...] = (
    Topic(
        topics.feedback_received,
        (FeedbackReceived,),
        Key("The customer id (`customer.id`), UTF-8: one customer's messages stay in order."),
        writer="ingest",
        readers=("classifier",),
        headers=("event_type", "schema_version", "event_id", "content-type"),
    ),
    Topic(
        topics.feedback_received_dlq,
        (DeadLetter,),
        DEAD_LETTER_KEY,
        writer="classifier",
        readers=("operators",),
    ),
    Topic(
        topics.feedback_classified,
        (FeedbackClassified,),
        Key("The customer id, UTF-8 (the key of the feedback.received record)."),
        writer="classifier",
        readers=("router", "trends"),
    ),
    Topic(
        topics.feedback_classified_dlq,
        (DeadLetter,),
        DEAD_LETTER_KEY,
        writer="router",
        readers=("operators",),
    ),
    Topic(
        topics.router_inbox,
        (ClassifiedIn, *COMMAND_TYPES.values(), Tick, CaseArrived),
        Key(
            "The floor id: every record of one floor on that floor's partition (the roster's "
            "floors in order; one partition, `main`, without floors), in order."
        ),
        writer="router",
        readers=("router",),
    ),
    Topic(
        topics.router_inbox_dlq,
        (DeadLetter,),
        DEAD_LETTER_KEY,
        writer="router",
        readers=("operators",),
    ),
    Topic(
        topics.cases_events,
        (CaseEvent,),
        Key("The case id (UUID, UTF-8): one case's events stay in order.", "uuid"),
        writer="router",
        readers=("webhooks", "dashboards"),
    ),
    Topic(
        topics.agents_events,
        (AgentNotice,),
        Key("The agent id, UTF-8."),
        writer="router",
        readers=("dashboards",),
    ),
    Topic(
        topics.feedback_corrections,
        (Correction,),
        Key("The case id (UUID, UTF-8).", "uuid"),
        writer="router",
        readers=("training",),
    ),
    Topic(
        topics.webhooks_dlq,
        (WebhookDeadLetter,),
        Key("The case id of the cases.events record (UUID, UTF-8).", "uuid"),
        writer="webhooks",
        readers=("operators",),
        headers=("event_type", "schema_version", "content-type"),
    ),
    Topic(
        topics.trends_surges,
        (SurgeEvent,),
        Key("`category:channel`, UTF-8: one series' surges stay in order."),
        writer="trends",
        readers=("dashboards",),
    ),
    Topic(
        topics.trends_emerging,
        (EmergingIssue,),
        Key("The cluster id (UUID, UTF-8).", "uuid"),
        writer="trends",
        readers=("dashboards",),
    ),
)

HEADER_DESCRIPTIONS = {
    "event_type": "The payload's model, as its `event_type` field.",
    "schema_version": "The payload's `schema_version`, as a decimal string.",
    "event_id": "The payload's `event_id`.",
    "content-type": "Always `application/json`.",
}


def _camel(name: str) -> str:
    first, *rest = name.replace("-", ".").split(".")
    return first + "".join(part.capitalize() for part in rest)


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _message_name(topic: Topic, model: type[BaseModel]) -> str:
    """Messages are per topic: the three dead-letter topics share a payload, not a message."""
    return f"{_camel(topic.spec.name)}{model.__name__}"


def _headers(topic: Topic, model: type[BaseModel]) -> dict[str, Any]:
    fields = model.model_fields
    properties: dict[str, Any] = {}
    for name in topic.headers:
        schema: dict[str, Any] = {"type": "string", "description": HEADER_DESCRIPTIONS[name]}
        if name == "event_type":
            schema["const"] = fields["event_type"].default
        elif name == "schema_version":
            schema["const"] = str(fields["schema_version"].default)
        elif name == "event_id":
            schema["format"] = "uuid"
        elif name == "content-type":
            schema["const"] = "application/json"
        properties[name] = schema
    return {
        "type": "object",
        "description": "Kafka record headers, UTF-8 values.",
        "properties": properties,
        "required": list(topic.headers),
    }


def _message(topic: Topic, model: type[BaseModel]) -> dict[str, Any]:
    doc = (model.__doc__ or "").strip().split("\n\n")[0]
    key: dict[str, Any] = {"type": "string", "description": topic.key.description}
    if topic.key.format:
        key["format"] = topic.key.format
    message: dict[str, Any] = {
        "name": model.__name__,
        "title": model.__name__,
        "summary": " ".join(doc.split()),
        "contentType": "application/json",
        "payload": {"$ref": SCHEMA_REF.format(model=model.__name__)},
    }
    if topic.headers:
        message["headers"] = _headers(topic, model)
    else:
        message["description"] = (
            "The writer sets no record headers: the payload's `event_type` and `schema_version` "
            "fields say what it is."
        )
    message["bindings"] = {"kafka": {"key": key, "bindingVersion": KAFKA_BINDINGS}}
    return message


def _channel(topic: Topic) -> dict[str, Any]:
    spec = topic.spec
    readers = ", ".join(topic.readers)
    return {
        "address": spec.name,
        "title": spec.name,
        "description": (
            f"{spec.description} Written by {topic.writer}; read by {readers}. "
            "The name on the broker carries `TRIAGE_KAFKA_TOPIC_PREFIX` in front."
        ),
        "messages": {
            _lower_first(model.__name__): {
                "$ref": f"#/components/messages/{_message_name(topic, model)}"
            }
            for model in topic.messages
        },
        "bindings": {
            "kafka": {
                "topic": spec.name,
                "partitions": spec.partitions,
                "topicConfiguration": {
                    "cleanup.policy": ["delete"],
                    "retention.ms": spec.retention_ms,
                },
                "bindingVersion": KAFKA_BINDINGS,
            }
        },
    }


def _operations(topic: Topic) -> dict[str, Any]:
    channel_id = _camel(topic.spec.name)
    messages = [
        {"$ref": f"#/channels/{channel_id}/messages/{_lower_first(model.__name__)}"}
        for model in topic.messages
    ]
    operations = {
        f"{_camel(topic.writer)}Sends{channel_id[:1].upper()}{channel_id[1:]}": {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "title": f"{topic.spec.name} written by {topic.writer}",
            "messages": messages,
        }
    }
    for reader in topic.readers:
        operations[f"{reader}Receives{channel_id[:1].upper()}{channel_id[1:]}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "title": f"{topic.spec.name} read by {reader}",
            "messages": messages,
        }
    return operations


def _schemas() -> dict[str, Any]:
    models = sorted(
        {model for topic in TOPICS for model in topic.messages}, key=lambda m: m.__name__
    )
    _, top = models_json_schema(
        [(model, "serialization") for model in models], ref_template=SCHEMA_REF
    )
    defs: dict[str, Any] = top["$defs"]
    return dict(sorted(defs.items()))


def _version() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return str(project["project"]["version"])


def document() -> dict[str, Any]:
    """The AsyncAPI document, as data."""
    declared = {spec.name for spec in topics.ALL_TOPICS}
    described = {topic.spec.name for topic in TOPICS}
    if declared != described:
        raise SystemExit(f"topics without a contract entry: {sorted(declared ^ described)}")
    operations: dict[str, Any] = {}
    for topic in TOPICS:
        operations.update(_operations(topic))
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Complaint triage topics",
            "version": _version(),
            "description": (
                "The Kafka topics of the complaint-triage services: what each carries, how its "
                "records are keyed, and which service writes and reads it. Every value is one "
                "JSON object of the model named by its `event_type` field (`schema_version` "
                "says which version of it). Generated by `python scripts/gen_asyncapi.py` from "
                "the topic specs and pydantic models; do not edit by hand."
            ),
            "license": {
                "name": "Apache-2.0",
                "url": "https://www.apache.org/licenses/LICENSE-2.0",
            },
        },
        "defaultContentType": "application/json",
        "servers": {
            "embedded": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": (
                    "The embedded broker of `triage up` (development). Elsewhere the brokers "
                    "are `TRIAGE_KAFKA_BOOTSTRAP`."
                ),
            }
        },
        "channels": {_camel(topic.spec.name): _channel(topic) for topic in TOPICS},
        "operations": operations,
        "components": {
            "messages": {
                _message_name(topic, model): _message(topic, model)
                for topic in TOPICS
                for model in topic.messages
            },
            "schemas": _schemas(),
        },
    }


def render() -> str:
    """The document as committed (YAML)."""
    header = (
        "# Generated by scripts/gen_asyncapi.py from the topic specs and message models; "
        "do not edit.\n"
    )
    return header + yaml.dump(
        document(),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )


class _Dumper(yaml.SafeDumper):
    """Writes shared parts out in full: no YAML anchors in a contract people read."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run python scripts/gen_asyncapi.py")
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
