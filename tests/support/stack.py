"""The whole product as separate processes (ingest, classifier workers, router workers) on an
embedded broker of its own, as the fault and load runs drive it (``bench/chaos.py``,
``bench/soak.py``, ``tests/chaos``): the product's supervisor (:mod:`services.stack`) runs the
processes; this module adds what those runs configure (topic prefix, short service levels,
several workers of a kind) and measure."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
import yaml

from services.common.broker import EmbeddedBroker, free_port
from services.router.roster import DEV_ROSTER_PATH, development_tokens, load_roster
from services.stack import Child, StartError, Supervisor, answers, service

ROOT = Path(__file__).parents[2]
# The development roster's teams on two floors, each with a supervisor (kate, leo).
FLOORS = {"service": ["care", "trust", "feedback"], "accounts": ["billing"]}


def floors_roster(path: Path) -> Path:
    """The development roster with its teams on the two floors of ``FLOORS``, written to
    ``path``."""
    data = yaml.safe_load(DEV_ROSTER_PATH.read_text(encoding="utf-8"))
    floor_of = {team: floor for floor, teams in FLOORS.items() for team in teams}
    data["floors"] = list(FLOORS)
    for team in data["teams"]:
        team["floor"] = floor_of[team["id"]]
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


Kind = Literal["ingest", "classifier", "router"]

#: Service levels of the fault runs: short enough that warnings and breaches fall during a run of
#: a few minutes, and only the clocks that start once per case (first response and resolution;
#: the runs send no replies in threads, so no case reopens), so "each deadline fires once" is
#: exact per case and metric.
CHAOS_SLA = """
warning_share: 0.5
on_warning: [notify, raise_priority]
on_breach: [notify, escalate, reoffer]
calendars:
  always: {timezone: UTC, always_open: true}
  emea: {timezone: UTC, always_open: true}
targets:
  chat:
    "*": {first_response: 8s, resolution: 40s}
  social:
    "*": {first_response: 12s, resolution: 60s}
  "*":
    P1: {first_response: 10s, resolution: 45s}
    "*": {first_response: 20s, resolution: 90s}
"""


@dataclass(frozen=True)
class StackOptions:
    """How many workers of each kind and how they are tuned."""

    classifiers: int = 1
    routers: int = 1
    sla_text: str = CHAOS_SLA
    offer_timeout_s: float = 10.0
    tick_interval_s: float = 0.5
    torch_threads: int = 1
    log_level: str = "INFO"
    classifier_batch_wait_s: float = 0.1
    floors: int = 1  # 2: the development roster split in two floors (FLOORS)


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process and its descendants (psutil when installed, else /proc)."""
    try:
        import psutil  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return _proc_rss(pid)
    try:
        process = psutil.Process(pid)
        total = int(process.memory_info().rss)
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += int(child.memory_info().rss)
    except psutil.Error:
        return None
    return total


def _proc_rss(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    total = 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            total = int(line.split()[1]) * 1024
    for child in _children(pid):
        total += _proc_rss(child) or 0
    return total


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found.extend(int(p) for p in (task / "children").read_text().split())
    return found


class Stack:
    """Broker, ingest, classifier workers and router workers as separate processes, run by the
    product's supervisor (:class:`services.stack.Supervisor`) with each process's output in a
    log file of ``workdir``; a process killed here is started again on a new port."""

    def __init__(
        self, workdir: Path, options: StackOptions, *, bootstrap: str | None = None
    ) -> None:
        self.workdir = workdir
        self.options = options
        workdir.mkdir(parents=True, exist_ok=True)
        broker: EmbeddedBroker | None = None
        if bootstrap is None:
            broker = EmbeddedBroker(port=free_port(), log_path=workdir / "broker.log")
            bootstrap = broker.bootstrap
        self.bootstrap = bootstrap
        self.run_id = uuid.uuid4().hex[:8]
        self.topic_prefix = f"r{self.run_id}."
        sla_path = workdir / "sla.yaml"
        sla_path.write_text(options.sla_text)
        self.env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TRIAGE_KAFKA_BOOTSTRAP": bootstrap,
            "TRIAGE_KAFKA_TOPIC_PREFIX": self.topic_prefix,
            "TRIAGE_INGEST_LOG_LEVEL": options.log_level,
            "TRIAGE_CLASSIFIER_APP_ID": f"cl-{self.run_id}",
            "TRIAGE_CLASSIFIER_DATA_DIR": str(workdir / "classifier"),
            "TRIAGE_CLASSIFIER_TORCH_THREADS": str(options.torch_threads),
            "TRIAGE_CLASSIFIER_BATCH_WAIT_S": str(options.classifier_batch_wait_s),
            "TRIAGE_CLASSIFIER_LOG_LEVEL": options.log_level,
            "TRIAGE_ROUTER_APP_ID": f"rt-{self.run_id}",
            "TRIAGE_ROUTER_DATA_DIR": str(workdir / "router"),
            "TRIAGE_ROUTER_SLA_FILE": str(sla_path),
            "TRIAGE_ROUTER_OFFER_TIMEOUT_S": str(options.offer_timeout_s),
            "TRIAGE_ROUTER_TICK_INTERVAL_S": str(options.tick_interval_s),
            "TRIAGE_ROUTER_LOG_LEVEL": options.log_level,
        }
        if options.floors > 1:
            roster = floors_roster(workdir / "roster-floors.yaml")
            self.env["TRIAGE_ROUTER_ROSTER_FILE"] = str(roster)
        # A supervisor of each floor: one answering for every floor means the router works.
        tokens = development_tokens(load_roster())
        self.floor_tokens = [tokens["kate"], tokens["leo"]] if options.floors > 1 else []
        self.supervisor = Supervisor(
            self.env, broker=broker, cwd=ROOT, log_dir=workdir, stop_signal=signal.SIGTERM
        )
        self.broker = broker
        self.ingest: Child | None = None
        self.classifiers: list[Child] = []
        self.routers: list[Child] = []

    def _add(self, kind: Kind, index: int | None = None) -> Child:
        name = kind if index is None else f"{kind}-{index}"
        return self.supervisor.add(service(kind), port=free_port(), name=name)

    async def start(self, *, timeout_s: float = 180) -> None:
        """Start the broker and every service; return when all are ready (one router active,
        the others standing by)."""
        self.supervisor.start_broker()
        self.ingest = self._add("ingest")
        self.classifiers = [self._add("classifier", n) for n in range(self.options.classifiers)]
        self.routers = [self._add("router", n) for n in range(self.options.routers)]
        waits = [self.supervisor.start(self.ingest, timeout_s=timeout_s)]
        waits += [self.supervisor.start(c, timeout_s=timeout_s) for c in self.classifiers]
        # A router on standby answers /readyz 503 until it owns the inbox: it has started when
        # it is alive.
        waits += [
            self.supervisor.start(router, timeout_s=timeout_s, path="/healthz")
            for router in self.routers
        ]
        await asyncio.gather(*waits)
        if self.routers and await self.wait_active_router(timeout_s) is None:
            raise StartError("no router became active")

    async def active_router(self) -> Child | None:
        """The router worker that owns the inbox now (its /readyz answers 200), if any; with
        floors, one through which a supervisor of each floor reads the cases (every floor is
        routed by a worker, and that worker answers)."""
        async with httpx.AsyncClient(timeout=2) as http:
            for router in self.routers:
                if not await answers(http, f"{router.base}/readyz"):
                    continue
                if all([await self._floor_answers(http, router, t) for t in self.floor_tokens]):
                    return router
        return None

    @staticmethod
    async def _floor_answers(http: httpx.AsyncClient, router: Child, token: str) -> bool:
        headers = {"Authorization": f"Bearer {token}"}
        try:
            response = await http.get(f"{router.base}/v1/cases?limit=1", headers=headers)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def wait_active_router(self, timeout_s: float) -> Child | None:
        """Wait until some router worker is active."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            active = await self.active_router()
            if active is not None:
                return active
            await asyncio.sleep(0.2)
        return None

    def router_bases(self) -> list[str]:
        """Base URLs of the router workers now running."""
        return [router.base for router in self.routers]

    async def kill_and_restart(
        self,
        kind: Kind,
        index: int,
        *,
        timeout_s: float = 180,
        after_kill: Callable[[], Awaitable[None]] | None = None,
    ) -> float:
        """SIGKILL one worker and start it again on a new port (``after_kill`` runs in
        between); return the seconds until the service works again (the classifier worker
        ready; a router worker active, which is the standby taking over when there is one)."""
        worker = (self.classifiers if kind == "classifier" else self.routers)[index]
        killed_at = time.monotonic()
        worker.kill()
        if after_kill is not None:
            await after_kill()
        self.supervisor.launch(worker, port=free_port())
        worker.restarts += 1
        if kind == "classifier":
            if not await self.supervisor.wait_ready(worker, timeout_s=timeout_s):
                raise StartError(f"{worker.name} not ready after a kill: {worker.log_tail()}")
            return time.monotonic() - killed_at
        active = await self.wait_active_router(timeout_s)
        if active is None:
            raise StartError(f"no router active after a kill: {worker.log_tail()}")
        recovered = time.monotonic() - killed_at
        if not await self.supervisor.wait_ready(worker, timeout_s=timeout_s, path="/healthz"):
            raise StartError(f"{worker.name} did not start after a kill: {worker.log_tail()}")
        return recovered

    def pids(self) -> dict[str, int]:
        """The running processes by name (ingest, classifier-0, router-1, broker)."""
        found: dict[str, int] = {}
        if self.broker is not None and self.broker.pid is not None:
            found["broker"] = self.broker.pid
        for child in self.supervisor.children:
            if child.pid is not None:
                found[child.name] = child.pid
        return found

    def stop(self) -> None:
        """Stop every process this stack started (SIGTERM, SIGKILL after 15 s), then the
        broker."""
        self.supervisor.stop()
