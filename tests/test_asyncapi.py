"""The AsyncAPI contract of the topics: current, valid AsyncAPI 3.0, and true to the wire."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from services.common.messages import (
    Channel,
    Customer,
    DeadLetter,
    FeedbackReceived,
    Source,
)
from services.common.topics import ALL_TOPICS
from services.router.commands import Tick
from services.webhooks.models import WebhookDeadLetter
from tests.webhooks.support import case_event

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "scripts" / "gen_asyncapi.py"
DOCUMENT = ROOT / "docs" / "asyncapi" / "triage.yaml"
# The official schema, vendored with its licence (see tests/asyncapi_schema/README.md).
SCHEMA = ROOT / "tests" / "asyncapi_schema" / "asyncapi-3.0.0.schema.json"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def asyncapi_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_committed_document_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_document_is_valid_asyncapi_3(
    document: dict[str, Any], asyncapi_validator: jsonschema.Draft7Validator
) -> None:
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in asyncapi_validator.iter_errors(document)
    ]
    assert errors == []


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d.update(asyncapi="2.6.0"),
        lambda d: d["channels"]["casesEvents"]["bindings"]["kafka"].update(partitions="six"),
        lambda d: d["components"]["messages"]["casesEventsCaseEvent"].update(contentType=7),
        lambda d: d["operations"]["routerSendsCasesEvents"].update(action="publish"),
    ],
)
def test_the_validation_catches_a_broken_document(
    document: dict[str, Any], asyncapi_validator: jsonschema.Draft7Validator, breakage: Any
) -> None:
    broken = copy.deepcopy(document)
    breakage(broken)
    assert not asyncapi_validator.is_valid(broken)


def test_every_topic_is_a_channel_as_declared(document: dict[str, Any]) -> None:
    channels = {c["address"]: c for c in document["channels"].values()}
    assert set(channels) == {spec.name for spec in ALL_TOPICS}
    for spec in ALL_TOPICS:
        kafka = channels[spec.name]["bindings"]["kafka"]
        assert kafka["partitions"] == spec.partitions
        assert kafka["topicConfiguration"]["retention.ms"] == spec.retention_ms
    for operation in document["operations"].values():
        name = operation["channel"]["$ref"].removeprefix("#/channels/")
        assert name in document["channels"]


def _validator_for(document: dict[str, Any], model: str) -> jsonschema.Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{model}", "components": document["components"]}
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _wire(model: BaseModel, **dump: Any) -> Any:
    return json.loads(model.model_dump_json(**dump))


def _samples() -> list[tuple[str, BaseModel, dict[str, Any]]]:
    feedback = FeedbackReceived(
        event_id=uuid.uuid4(),
        source=Source(platform="helpdesk", event_id="t-1"),
        channel=Channel.EMAIL,
        customer=Customer(id="c-1"),
        text="Charged twice.",
        received_at=NOW,
    )
    return [
        ("FeedbackReceived", feedback, {"exclude_none": True}),  # as ingest writes it
        ("CaseEvent", case_event(uuid.uuid4(), 3), {}),
        ("Tick", Tick(at=NOW), {}),
        (
            "DeadLetter",
            DeadLetter.for_record(
                topic="feedback.received",
                partition=0,
                offset=7,
                key=b"c-1",
                value=b"{}",
                reason="bad",
                error_type="ValidationError",
                now=NOW,
                service="classifier",
            ),
            {},
        ),
        (
            "WebhookDeadLetter",
            WebhookDeadLetter.for_record(
                subscription="crm",
                topic="cases.events",
                partition=1,
                offset=2,
                value=b"{}",
                attempts=12,
                reason="answered HTTP 500",
                error_type="http_status",
                now=NOW,
                last_status=500,
            ),
            {},
        ),
    ]


@pytest.mark.parametrize(("model", "message", "dump"), _samples(), ids=lambda v: str(v)[:20])
def test_payloads_as_written_match_the_contract(
    document: dict[str, Any], model: str, message: BaseModel, dump: dict[str, Any]
) -> None:
    validator = _validator_for(document, model)
    payload = _wire(message, **dump)
    assert list(validator.iter_errors(payload)) == []
    assert not validator.is_valid({**payload, "unexpected": 1})
    assert not validator.is_valid(
        {k: v for k, v in payload.items() if k != "event_type"} | {"schema_version": 2}
    )


def test_documented_headers_are_the_ones_ingest_writes(document: dict[str, Any]) -> None:
    from services.ingest.api import _record

    message = document["components"]["messages"]["feedbackReceivedFeedbackReceived"]
    feedback = FeedbackReceived(
        event_id=uuid.uuid4(),
        source=Source(platform="helpdesk", event_id="t-1"),
        channel=Channel.CHAT,
        customer=Customer(id="c-1"),
        text="Hello",
        received_at=NOW,
    )
    record = _record(feedback)
    headers = {name: value.decode() for name, value in record.headers}
    assert set(headers) == set(message["headers"]["properties"])
    header_validator = jsonschema.Draft202012Validator(
        message["headers"], format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    assert list(header_validator.iter_errors(headers)) == []
    assert record.key == b"c-1"
