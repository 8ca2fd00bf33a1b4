"""Malformed bodies over real HTTP (uvicorn, chunked transfers included) on the running ingest and
router: always a 4xx with a message, never a 5xx, and nothing reaches Kafka."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import Iterator

import httpx
import pytest

from services.common.kafka import KafkaSettings
from services.common.problems import PROBLEM_JSON
from services.common.topics import feedback_received, router_inbox
from services.ingest.settings import DEV_API_KEY
from tests.hostile.conftest import SUPERVISOR_TOKEN
from tests.hostile.strategies import nested
from tests.support.kafka import ConsumedRecord, read_records
from tests.support.process import ServiceProcess

pytestmark = pytest.mark.timeout(300)

MB = 1_048_576
INGEST_AUTH = {"Authorization": f"Bearer {DEV_API_KEY}"}
AGENT_AUTH = {"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}
JSON = "application/json"
VALID_EVENT = {"id": "ok-1", "channel": "web", "customer": {"id": "c"}, "text": "It broke."}
VALID_CHAT = {"id": "ok-2", "customer": {"id": "c"}, "turns": [{"role": "customer", "text": "x"}]}

# (what, body, content type, expected status); every ingest JSON endpoint gets each one.
MALFORMED: list[tuple[str, bytes, str | None, int]] = [
    ("nested 10,000 levels", nested(10_000), JSON, 422),
    ("nested 100,000 levels", nested(100_000), JSON, 422),
    ("invalid UTF-8", b'{"id": "\xc3\x28", "text": "\xff"}', JSON, 422),
    ("UTF-16", json.dumps(VALID_EVENT).encode("utf-16"), JSON, 422),
    ("a lone surrogate", b'{"id": "\\ud800", "text": "x"}', JSON, 422),
    ("not JSON", b"id=1&text=hello", JSON, 422),
    ("empty", b"", JSON, 422),
    ("null", b"null", JSON, 422),
    ("a number 5,000 digits long", b'{"id": ' + b"9" * 5000 + b"}", JSON, 422),
    ("NaN", b'{"id": NaN}', JSON, 422),
    ("duplicate keys", b'{"id": "a", "id": {"x": 1}}', JSON, 422),
    ("form", json.dumps(VALID_EVENT).encode(), "application/x-www-form-urlencoded", 415),
    ("no content type", json.dumps(VALID_EVENT).encode(), None, 415),
    ("text/plain", json.dumps(VALID_EVENT).encode(), "text/plain", 415),
    ("multipart", b"--b\r\n\r\nx\r\n--b--", "multipart/form-data; boundary=b", 415),
]  # fmt: skip
INGEST_JSON_PATHS = [
    "/v1/feedback",
    "/v1/feedback/chat",
    "/v1/feedback/social",
    "/v1/feedback/batch",
]


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def _headers(auth: dict[str, str], media: str | None) -> dict[str, str]:
    return {**auth, "Content-Type": media} if media else dict(auth)


def _refused_clearly(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]
    assert problem["instance"] == response.request.url.path
    if status == 422:
        assert problem["errors"], "a validation problem names the fields"
    text = json.dumps(problem)
    assert "Traceback" not in text
    assert len(text) < 2000, "an error never echoes a large input back"


@pytest.mark.parametrize("path", INGEST_JSON_PATHS)
@pytest.mark.parametrize(
    ("body", "media", "status"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_ingest_refuses_malformed_json_bodies(
    ingest_service: ServiceProcess,
    http: httpx.Client,
    path: str,
    body: bytes,
    media: str | None,
    status: int,
) -> None:
    response = http.post(
        ingest_service.base + path, content=body, headers=_headers(INGEST_AUTH, media)
    )
    _refused_clearly(response, status)


@pytest.mark.parametrize(
    ("what", "body", "media", "status"),
    [
        ("JSON", json.dumps(VALID_EVENT).encode(), JSON, 415),
        ("no content type", b"From: a@example.com\r\n\r\nhi", None, 415),
        ("binary noise", bytes(range(256)) * 40, "message/rfc822", 422),
        ("nested 10,000 MIME levels", b"".join(
            f'Content-Type: multipart/mixed; boundary="b{n}"\r\n\r\n--b{n}\r\n'.encode()
            for n in range(10_000)
        ), "message/rfc822", 422),
        ("only headers", b"From: a@example.com\r\nSubject: x\r\n", "message/rfc822", 422),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 40 else "",
)  # fmt: skip
def test_ingest_refuses_malformed_emails(
    ingest_service: ServiceProcess,
    http: httpx.Client,
    what: str,
    body: bytes,
    media: str | None,
    status: int,
) -> None:
    response = http.post(
        ingest_service.base + "/v1/feedback/email",
        content=body,
        headers=_headers(INGEST_AUTH, media),
    )
    _refused_clearly(response, status)


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"text": "'
    sent = 10
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


@pytest.mark.parametrize(
    ("path", "limit", "media"),
    [
        ("/v1/feedback", MB, JSON),
        ("/v1/feedback/chat", MB, JSON),
        ("/v1/feedback/social", MB, JSON),
        ("/v1/feedback/batch", 8 * MB, JSON),
        ("/v1/feedback/email", 10 * MB, "message/rfc822"),
    ],
)
@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_ingest_refuses_bodies_over_the_limit(
    ingest_service: ServiceProcess,
    http: httpx.Client,
    path: str,
    limit: int,
    media: str,
    chunked: bool,
) -> None:
    headers = _headers(INGEST_AUTH, media)
    url = ingest_service.base + path
    if chunked:
        response = http.post(url, content=_chunks(limit + MB), headers=headers)
    else:
        response = http.post(url, content=b"x" * (limit + 1), headers=headers)
    _refused_clearly(response, 413)


def test_ingest_refuses_a_lying_content_length(ingest_service: ServiceProcess) -> None:
    """A Content-Length far over the limit is refused before any of the body is sent."""
    with socket.create_connection(("127.0.0.1", ingest_service.port), timeout=10) as conn:
        conn.sendall(
            b"POST /v1/feedback HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + DEV_API_KEY.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n{"
        )
        answer = conn.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_nothing_reached_feedback_received(
    ingest_service: ServiceProcess, http: httpx.Client, module_kafka: KafkaSettings
) -> None:
    """Runs after the refusals above: only the one valid event posted now is on the topic."""
    accepted = http.post(
        ingest_service.base + "/v1/feedback", json=VALID_EVENT, headers=INGEST_AUTH
    )
    assert accepted.status_code == 202
    records = asyncio_run_read(module_kafka, module_kafka.topic(feedback_received), expected=1)
    assert [r.json()["source"]["event_id"] for r in records] == ["ok-1"]


def asyncio_run_read(kafka: KafkaSettings, topic: str, *, expected: int) -> list[ConsumedRecord]:
    return asyncio.run(read_records(kafka, topic, expected=expected, settle_s=1.0))


# The agent API: every operation with a body, as a supervisor (who may call all of them).
AGENT_BODIES = [
    ("PUT", "/v1/me/presence"),
    ("POST", "/v1/cases/{case}/decline"),
    ("POST", "/v1/cases/{case}/respond"),
    ("POST", "/v1/cases/{case}/resolve"),
    ("POST", "/v1/cases/{case}/transfer"),
    ("POST", "/v1/cases/{case}/csat"),
    ("POST", "/v1/cases/{case}/reassign"),
    ("POST", "/v1/cases/{case}/relabel"),
    ("PUT", "/v1/agents/zed"),
    ("PUT", "/v1/agents/dan/presence"),
]
AGENT_MALFORMED: list[tuple[str, bytes, str | None, tuple[int, ...]]] = [
    ("nested 10,000 levels", nested(10_000), JSON, (400, 422)),
    ("nested 100,000 levels", nested(100_000), JSON, (400, 422)),
    ("invalid UTF-8", b'{"reason": "\xc3\x28"}', JSON, (400, 422)),
    ("not JSON", b"{reason: x", JSON, (422,)),
    ("a JSON list", b"[1, 2]", JSON, (422,)),
    ("a number 5,000 digits long", b'{"score": ' + b"9" * 5000 + b"}", JSON, (400, 422)),
    ("text/plain", b'{"presence": "away"}', "text/plain", (422,)),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path"), AGENT_BODIES)
@pytest.mark.parametrize(
    ("body", "media", "statuses"),
    [m[1:] for m in AGENT_MALFORMED],
    ids=[m[0] for m in AGENT_MALFORMED],
)
def test_agent_api_refuses_malformed_bodies(
    router_service: ServiceProcess,
    http: httpx.Client,
    method: str,
    path: str,
    body: bytes,
    media: str | None,
    statuses: tuple[int, ...],
) -> None:
    url = router_service.base + path.replace("{case}", str(uuid.uuid4()))
    response = http.request(method, url, content=body, headers=_headers(AGENT_AUTH, media))
    assert response.status_code in statuses, response.text[:300]
    _refused_clearly(response, response.status_code)


@pytest.mark.parametrize(("method", "path"), AGENT_BODIES[:3] + AGENT_BODIES[-2:])
@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_agent_api_refuses_bodies_over_the_limit(
    router_service: ServiceProcess, http: httpx.Client, method: str, path: str, chunked: bool
) -> None:
    url = router_service.base + path.replace("{case}", str(uuid.uuid4()))
    content: bytes | Iterator[bytes] = _chunks(2 * MB) if chunked else b"x" * (MB + 1)
    response = http.request(method, url, content=content, headers=_headers(AGENT_AUTH, JSON))
    _refused_clearly(response, 413)


def test_no_command_reached_the_inbox(
    router_service: ServiceProcess, http: httpx.Client, module_kafka: KafkaSettings
) -> None:
    """Runs after the refusals above: the one valid command sent now is the only command."""
    response = http.put(
        router_service.base + "/v1/me/presence", json={"presence": "busy"}, headers=AGENT_AUTH
    )
    assert response.status_code == 200, response.text
    records = asyncio_run_read(module_kafka, module_kafka.topic(router_inbox), expected=1)
    commands = [r.json() for r in records if r.json().get("kind") == "command"]
    assert [(c["actor"], c["action"]) for c in commands] == [("kate", "presence")]
