"""The ``triage`` command as a user runs it: real processes, real ports, real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.common.broker import EmbeddedBroker, free_port, port_in_use, wait_for_port
from services.common.health import wait_until_ready
from services.common.kafka import KafkaSettings
from services.common.topics import feedback_classified
from services.ingest.auth import hash_key
from services.ingest.settings import DEV_API_KEY
from services.router.roster import hash_token
from services.stack import SERVICES
from tests.support.kafka import read_records

TRIAGE = [sys.executable, "-m", "services.cli"]
ROOT = Path(__file__).parents[1]


def _spawn(
    args: list[str], *, env: dict[str, str] | None = None, log: Path
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*TRIAGE, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
def stop_later() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            # SIGINT first: `triage up` then stops the services it started.
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def _wait_for_text(log: Path, pattern: str, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if re.search(pattern, text):
            return text
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} not seen in:\n{log.read_text(errors='replace')}")


def test_broker_refuses_a_taken_port() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [*TRIAGE, "broker", "--port", str(port)], cwd=ROOT, capture_output=True, timeout=30
        )
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr.decode()


def test_broker_runs_in_the_foreground_and_stops_on_ctrl_c(
    tmp_path: Path, stop_later: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    log = tmp_path / "broker.out"
    process = _spawn(["broker", "--port", str(port)], log=log)
    stop_later.append(process)
    _wait_for_text(log, f"listening on 127.0.0.1:{port}")
    assert wait_for_port("127.0.0.1", port, timeout_s=5)
    process.send_signal(signal.SIGINT)
    assert process.wait(15) == 0
    assert "embedded broker stopped" in log.read_text()
    assert not port_in_use("127.0.0.1", port)


def test_ingest_serves_real_http(
    broker: EmbeddedBroker, tmp_path: Path, stop_later: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    log = tmp_path / "ingest.out"
    env = {"TRIAGE_KAFKA_BOOTSTRAP": broker.bootstrap, "TRIAGE_KAFKA_TOPIC_PREFIX": "cli."}
    process = _spawn(["ingest", "--port", str(port)], env=env, log=log)
    stop_later.append(process)
    base = f"http://127.0.0.1:{port}"
    ready = wait_until_ready(f"{base}/readyz", timeout_s=30, process=process)
    assert ready, log.read_text()
    body = {"id": "cli-1", "channel": "email", "customer": {"id": "cust-42"}, "text": "hello"}
    response = httpx.post(
        f"{base}/v1/feedback", json=body, headers={"Authorization": f"Bearer {DEV_API_KEY}"}
    )
    assert response.status_code == 202, response.text
    assert httpx.get(f"{base}/openapi.json").json()["info"]["title"].startswith("Complaint")
    process.send_signal(signal.SIGINT)
    assert process.wait(15) == 0
    assert not port_in_use("127.0.0.1", port)


def test_ingest_refuses_production_without_keys() -> None:
    result = subprocess.run(
        [*TRIAGE, "ingest", "--port", str(free_port())],
        cwd=ROOT,
        env={**os.environ, "TRIAGE_ENV": "production"},
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "TRIAGE_INGEST_API_KEYS must list at least one platform key" in result.stderr.decode()


def test_ingest_refuses_malformed_configuration() -> None:
    result = subprocess.run(
        [*TRIAGE, "ingest"],
        cwd=ROOT,
        env={**os.environ, "TRIAGE_INGEST_API_KEYS": "{not json", "TRIAGE_KAFKA_BOOTSTRAP": "nope"},
        capture_output=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr.decode()
    assert (
        "TRIAGE_INGEST_API_KEYS" in result.stderr.decode() or "api_keys" in result.stderr.decode()
    )


def test_agent_token_prints_a_token_and_its_hash() -> None:
    result = subprocess.run(
        [*TRIAGE, "agent-token", "ana"], cwd=ROOT, capture_output=True, timeout=30, check=True
    )
    out = result.stdout.decode()
    token = re.search(r"\(give it to the agent; it is not stored\): (\S+)", out)
    digest = re.search(r"token_sha256: ([0-9a-f]{64})", out)
    assert token
    assert digest
    assert hash_token(token.group(1)) == digest.group(1)


def test_router_refuses_production_without_a_roster() -> None:
    result = subprocess.run(
        [*TRIAGE, "router", "--port", str(free_port())],
        cwd=ROOT,
        env={**os.environ, "TRIAGE_ENV": "production"},
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "TRIAGE_ROUTER_ROSTER_FILE" in result.stderr.decode()


def test_router_reports_a_broken_roster_clearly(tmp_path: Path) -> None:
    roster = tmp_path / "roster.yaml"
    roster.write_text("default_team: care\nteams: [{id: care, name: Care}]\nagents: [{id: x}]\n")
    result = subprocess.run(
        [*TRIAGE, "router", "--port", str(free_port())],
        cwd=ROOT,
        env={**os.environ, "TRIAGE_ROUTER_ROSTER_FILE": str(roster)},
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 1
    err = result.stderr.decode()
    assert "Traceback" not in err
    assert "agents.0.name" in err


def test_keygen_prints_a_key_and_its_hash() -> None:
    result = subprocess.run(
        [*TRIAGE, "keygen", "zendesk"], cwd=ROOT, capture_output=True, timeout=30, check=True
    )
    out = result.stdout.decode()
    key = re.search(r"\(give it to the platform; it is not stored\): (\S+)", out)
    config = re.search(r"TRIAGE_INGEST_API_KEYS='(.+)'", out)
    assert key
    assert config
    assert json.loads(config.group(1)) == {"zendesk": hash_key(key.group(1))}


@pytest.mark.timeout(300)
def test_up_runs_the_services_and_stops_cleanly(
    tmp_path: Path, stop_later: list[subprocess.Popen[bytes]]
) -> None:
    ports = _free_ports()
    broker_port, ingest_port, router_port = ports["broker"], ports["ingest"], ports["router"]
    log = tmp_path / "up.out"
    process = _spawn(
        ["up", *_port_options(ports)],
        env={
            "TRIAGE_CLASSIFIER_DATA_DIR": str(tmp_path / "classifier"),
            "TRIAGE_ROUTER_DATA_DIR": str(tmp_path / "router"),
        },
        log=log,
    )
    stop_later.append(process)
    text = _wait_for_text(log, "Ctrl-C stops everything", timeout_s=180)
    assert f"Bearer {DEV_API_KEY}" in text
    assert f"http://127.0.0.1:{ingest_port}/docs" in text
    body = {
        "id": "up-1",
        "channel": "chat",
        "customer": {"id": "c"},
        "text": "You charged me twice for my order. Please refund the extra £40.",
    }
    response = httpx.post(
        f"http://127.0.0.1:{ingest_port}/v1/feedback",
        json=body,
        headers={"Authorization": f"Bearer {DEV_API_KEY}"},
    )
    assert response.status_code == 202
    kafka = KafkaSettings(bootstrap=f"127.0.0.1:{broker_port}")
    (record,) = asyncio.run(
        read_records(kafka, kafka.topic(feedback_classified), expected=1, timeout_s=60)
    )
    assert record.json()["event_id"] == response.json()["event_id"]
    # Through the router: the message became a case offered to an agent, who accepts it.
    assert "dev-kate" in text
    router = f"http://127.0.0.1:{router_port}"
    assert f"{router}/console/" in text
    console = httpx.get(f"{router}/", follow_redirects=True)
    assert console.status_code == 200
    assert "Triage console" in console.text
    deadline = time.monotonic() + 60
    cases: list[dict[str, object]] = []
    while time.monotonic() < deadline and not cases:
        page = httpx.get(f"{router}/v1/cases", headers={"Authorization": "Bearer dev-kate"}).json()
        cases = page["items"]
        time.sleep(0.3)
    (case,) = cases
    assert case["customer_id"] == "c"
    offer = case["offer"]
    assert isinstance(offer, dict), case
    accepted = httpx.post(
        f"{router}/v1/cases/{case['case_id']}/accept",
        headers={"Authorization": f"Bearer dev-{offer['agent_id']}"},
    )
    assert accepted.status_code == 200
    assert accepted.json()["assignee"] == offer["agent_id"]
    # A service that dies is started again on its port.
    (ingest_pid,) = [
        pid
        for pid in _children_of(process.pid)
        if _cmdline(pid)[-3:] == ["ingest", "--port", str(ingest_port)]
    ]
    os.kill(ingest_pid, signal.SIGKILL)  # a process this test's `triage up` started
    _wait_for_text(log, r"ingest exited with code -9; restarting \(restart 1\)")
    ready = wait_until_ready(f"http://127.0.0.1:{ingest_port}/readyz", timeout_s=60)
    assert ready, log.read_text()
    again = httpx.post(
        f"http://127.0.0.1:{ingest_port}/v1/feedback",
        json={**body, "id": "up-2"},
        headers={"Authorization": f"Bearer {DEV_API_KEY}"},
    )
    assert again.status_code == 202
    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0
    for port in ports.values():
        assert not port_in_use("127.0.0.1", port)


def test_up_refuses_a_taken_port_before_starting_anything() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        ports = {name: port if name == "router" else free_port() for name in _free_ports()}
        result = subprocess.run(
            [*TRIAGE, "up", *_port_options(ports)],
            cwd=ROOT,
            capture_output=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert f"router port {port} is already in use" in result.stderr.decode()
    assert not any(port_in_use("127.0.0.1", port) for port in ports.values())


def test_up_demo_refuses_a_configuration_it_cannot_play() -> None:
    result = subprocess.run(
        [*TRIAGE, "up", "--demo", *_port_options(_free_ports())],
        cwd=ROOT,
        env={**os.environ, "TRIAGE_INGEST_API_KEYS": json.dumps({"p": hash_key("k")})},
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "--demo plays the development roster's agents" in result.stderr.decode()


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself hold spaces or parentheses.
    return stat.rsplit(")", 1)[1].split()


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except OSError:
        return []


def _children_of(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                children.append(int(entry.name))
    return children


def _alive(pid: int) -> bool:
    fields = _proc_stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")  # a zombie holds no port


def _free_ports() -> dict[str, int]:
    return {name: free_port() for name in ("broker", *(spec.name for spec in SERVICES))}


def _port_options(ports: dict[str, int]) -> list[str]:
    """`triage up`'s options for these ports."""
    return [arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))]


def _spawn_up(tmp_path: Path) -> tuple[dict[str, int], Path, subprocess.Popen[bytes]]:
    """`triage up` on free ports with its state under tmp_path: the ports, its log, the process."""
    ports = _free_ports()
    log = tmp_path / "up.out"
    process = _spawn(
        ["up", *_port_options(ports)],
        env={
            "TRIAGE_CLASSIFIER_DATA_DIR": str(tmp_path / "classifier"),
            "TRIAGE_ROUTER_DATA_DIR": str(tmp_path / "router"),
        },
        log=log,
    )
    return ports, log, process


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; prctl is Linux's")
@pytest.mark.timeout(180)
def test_up_killed_hard_takes_its_children_with_it(tmp_path: Path) -> None:
    ports, log, process = _spawn_up(tmp_path)
    children: list[int] = []
    try:
        assert wait_for_port("127.0.0.1", ports["ingest"], timeout_s=120), log.read_text()
        # Stopped first, so it cannot start another child between the listing and the kill.
        process.send_signal(signal.SIGSTOP)
        children = _children_of(process.pid)
        assert len(children) >= 2, f"expected the broker and ingest, found {children}"
        process.kill()
        process.wait(10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            held = [name for name, port in ports.items() if port_in_use("127.0.0.1", port)]
            if not held and not any(_alive(child) for child in children):
                break
            time.sleep(0.1)
        assert [c for c in children if _alive(c)] == [], "children outlived `triage up`"
        assert held == [], f"ports still held after `triage up` was killed: {held}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        for child in children:  # only the processes this test's `triage up` started
            if _alive(child):
                os.kill(child, signal.SIGKILL)


@pytest.mark.timeout(120)
def test_up_stops_everything_when_its_terminal_closes(tmp_path: Path) -> None:
    ports, log, process = _spawn_up(tmp_path)
    children: list[int] = []
    try:
        assert wait_for_port("127.0.0.1", ports["ingest"], timeout_s=60), log.read_text()
        children = _children_of(process.pid)
        process.send_signal(signal.SIGHUP)  # what a closing terminal sends its foreground job
        # Still starting: it stops at once instead of starting the other services first.
        assert process.wait(30) == 0, log.read_text()
        assert "stopped" in log.read_text()
        assert [c for c in children if _alive(c)] == []
        assert [name for name, port in ports.items() if port_in_use("127.0.0.1", port)] == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        for child in children:
            if _alive(child):
                os.kill(child, signal.SIGKILL)


async def test_the_router_creates_every_topic_it_writes(
    broker: EmbeddedBroker, kafka: KafkaSettings
) -> None:
    """A topic the router writes and nobody created stalls its inbox (the send waits for the
    topic): `triage router` creates every one it writes, as the ACLs name them."""
    from services.cli import _prepare_router_topics
    from services.common.kafka import existing_topics
    from services.common.topics import ALL_TOPICS
    from tests.deploy.test_kafka_security import WRITER

    await asyncio.to_thread(_prepare_router_topics, kafka)
    existing = await existing_topics(kafka)
    written = [spec for spec in ALL_TOPICS if WRITER[spec.name] == "triage-router"]
    assert len(written) >= 5
    for spec in written:
        assert kafka.topic(spec) in existing, spec.name
