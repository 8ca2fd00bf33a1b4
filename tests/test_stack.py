"""The supervisor (`services/stack.py`): its pure parts, and real child processes (a small HTTP
server standing in for a service) started, restarted when they die, and stopped."""

from __future__ import annotations

import asyncio
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from services.cli import main
from services.common.broker import free_port, port_in_use
from services.stack import (
    MAX_BACKOFF_S,
    SERVICES,
    Child,
    ServiceSpec,
    StartError,
    Supervisor,
    backoff_s,
    banner,
    service,
    taken_ports,
)


@dataclass(frozen=True)
class Program(ServiceSpec):
    """A stand-in service: any program that takes the port as its last argument."""

    program: tuple[str, ...] = ()

    def argv(self, port: int) -> list[str]:
        return [*self.program, str(port)]


WEB = Program(
    "web",
    0,
    ready_path="/",
    program=(sys.executable, "-m", "http.server", "--bind", "127.0.0.1"),
)


def test_each_service_runs_as_its_triage_command_on_its_port() -> None:
    argv = service("router").argv(9000)
    assert argv[1:] == ["-m", "services.cli", "router", "--port", "9000"]
    names = [spec.name for spec in SERVICES]
    assert names == ["ingest", "classifier", "router", "webhooks", "trends"]
    assert len({spec.default_port for spec in SERVICES}) == len(SERVICES)
    with pytest.raises(KeyError):
        service("nope")


def test_triage_up_has_a_port_option_for_every_service() -> None:
    result = CliRunner().invoke(main, ["up", "--help"])
    assert result.exit_code == 0
    for spec in SERVICES:
        assert f"--{spec.name}-port" in result.output
        assert f"[default: {spec.default_port}]" in result.output


def test_restarts_back_off_a_second_more_each_time_up_to_a_bound() -> None:
    assert [backoff_s(n) for n in (0, 1, 2, 3)] == [0.0, 1.0, 2.0, 3.0]
    assert backoff_s(50) == MAX_BACKOFF_S


def test_the_banner_lists_each_service_and_every_metrics_endpoint() -> None:
    children = [Child(service(name), port, name) for name, port in (("ingest", 1), ("router", 2))]
    lines = banner("127.0.0.1:9", children)
    assert lines[0] == "  broker       127.0.0.1:9 (embedded, in memory)"
    assert "  ingest API   http://127.0.0.1:1/v1/feedback   docs: http://127.0.0.1:1/docs" in lines
    assert "  console      http://127.0.0.1:2/console/   (sign in with an agent token)" in lines
    assert lines[-1] == "  metrics      http://127.0.0.1:1/metrics  http://127.0.0.1:2/metrics"


def test_taken_ports_are_named() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        free = free_port()
        assert taken_ports({"ingest": port, "router": free}) == [
            f"ingest port {port} is already in use"
        ]


@pytest.mark.timeout(60)
async def test_a_service_that_dies_is_started_again_and_all_stop_together(
    tmp_path: Path,
) -> None:
    said: list[str] = []
    supervisor = Supervisor({}, cwd=tmp_path, log_dir=tmp_path, say=said.append)
    first = supervisor.add(WEB, port=free_port(), name="web-1")
    second = supervisor.add(WEB, port=free_port(), name="web-2")
    killed: list[int] = []

    async def crash_and_recover() -> None:
        assert first.process is not None
        killed.append(first.process.pid)
        first.process.kill()  # a crash; the supervisor notices on its own
        while first.process.pid == killed[0]:  # the old process until it is started again
            await asyncio.sleep(0.1)
        assert await supervisor.wait_ready(first, timeout_s=30)

    await asyncio.wait_for(supervisor.run(crash_and_recover), timeout=50)
    assert said == ["web-1 exited with code -9; restarting (restart 1)"]
    assert first.pid is None, "a child outlived the supervisor"
    assert second.pid is None, "a child outlived the supervisor"
    assert first.process is not None
    assert first.process.pid != killed[0]
    assert second.restarts == 0
    assert not port_in_use("127.0.0.1", first.port)
    assert not port_in_use("127.0.0.1", second.port)


@pytest.mark.timeout(60)
async def test_a_service_that_exits_while_starting_stops_the_start(tmp_path: Path) -> None:
    failing = Program("bad", 0, program=(sys.executable, "-c", "import sys; sys.exit(3)"))
    supervisor = Supervisor({}, log_dir=tmp_path)
    supervisor.add(failing, port=free_port())
    web = supervisor.add(WEB, port=free_port())
    with pytest.raises(StartError, match="bad exited with code 3 while starting"):
        await supervisor.run()
    assert web.process is None, "the services after the failed one were started"


@pytest.mark.timeout(60)
async def test_a_stop_request_ends_the_wait_for_readiness_at_once(tmp_path: Path) -> None:
    never_ready = Program("slow", 0, program=(sys.executable, "-c", "import time; time.sleep(60)"))
    supervisor = Supervisor({}, log_dir=tmp_path)
    slow = supervisor.add(never_ready, port=free_port())
    loop = asyncio.get_running_loop()
    loop.call_later(1.0, supervisor.request_stop)
    started = loop.time()
    await supervisor.run()  # returns quietly: a stop is not a failure to start
    assert loop.time() - started < 10
    assert slow.pid is None
