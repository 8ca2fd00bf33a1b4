"""The supervisor of the product's processes: the embedded broker and every service as a child
process of its own (``triage <service> --port P``), started in order and waited for, restarted
when one exits, stopped together. ``triage up`` runs it; so do the tests and the fault and load
runs (``bench/chaos.py``, ``bench/soak.py``, through ``tests/support/stack.py``).

A service is one :class:`ServiceSpec` in :data:`SERVICES`: an entry there gives it a
``--<name>-port`` option on ``triage up``, a place in the start order and its lines in the
banner. What a service checks before it runs (its settings, roster, topics) lives with the
service, in its own ``triage`` command; the supervisor only starts processes and watches them.

Only processes started here are ever signalled, by their own PID. Each child gets the kernel's
SIGKILL when the supervisor dies, however it dies (see
:func:`services.common.broker.dies_with_this_process`), so none is left holding its port.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from services.common.broker import (
    DEFAULT_HOST,
    EmbeddedBroker,
    dies_with_this_process,
    port_in_use,
)
from services.common.errors import TriageError

if TYPE_CHECKING:  # httpx is imported when first needed: every `triage` command imports this
    import httpx

#: How long a service may take to answer its readiness path (the classifier loads its model).
READY_TIMEOUT_S = 180.0
#: How long the services get to stop after the stop signal before they are killed.
STOP_TIMEOUT_S = 15.0
#: The longest pause before a service that keeps exiting is started again.
MAX_BACKOFF_S = 5.0


@dataclass(frozen=True)
class ServiceSpec:
    """A service as the supervisor runs it: the ``triage`` subcommand ``name`` on a port."""

    name: str
    default_port: int
    #: The path that answers 200 once the service does its work.
    ready_path: str = "/readyz"
    #: The banner's lines for it: a label and a text in which ``{base}`` is its base URL.
    links: tuple[tuple[str, str], ...] = ()

    def argv(self, port: int) -> list[str]:
        """The command line of one process of the service."""
        return [sys.executable, "-m", "services.cli", self.name, "--port", str(port)]


#: Every service of the product, in start order: each one's readiness needs the broker only,
#: but the order gives ``triage up`` a predictable log and banner.
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "ingest",
        8080,
        links=(("ingest API", "{base}/v1/feedback   docs: {base}/docs"),),
    ),
    ServiceSpec(
        "classifier",
        8081,
        links=(("classifier", "{base}/readyz   metrics: {base}/metrics"),),
    ),
    ServiceSpec(
        "router",
        8082,
        links=(
            ("console", "{base}/console/   (sign in with an agent token)"),
            ("agent API", "{base}/v1/cases   docs: {base}/docs"),
        ),
    ),
    ServiceSpec(
        "webhooks",
        8083,
        links=(("webhooks", "{base}/metrics   subscriptions: TRIAGE_WEBHOOKS_FILE (none: idle)"),),
    ),
    ServiceSpec(
        "trends",
        8084,
        links=(("trends API", "{base}/v1/trends   docs: {base}/docs   (a supervisor's token)"),),
    ),
)


def service(name: str) -> ServiceSpec:
    """The spec of the service called ``name``."""
    for spec in SERVICES:
        if spec.name == name:
            return spec
    raise KeyError(f"no service called {name!r}")


class StartError(TriageError):
    """A service did not start: it exited while starting, or was not ready in time."""


def backoff_s(restarts: int) -> float:
    """The pause before the ``restarts``-th start again of a service that exited: one second
    more each time, so a service that cannot start does not spin, up to a bound."""
    return min(MAX_BACKOFF_S, float(max(restarts, 0)))


def taken_ports(ports: Mapping[str, int], host: str = DEFAULT_HOST) -> list[str]:
    """A sentence for each port that something already listens on."""
    return [
        f"{name} port {port} is already in use"
        for name, port in ports.items()
        if port_in_use(host, port)
    ]


@dataclass(eq=False)  # identity: two processes of one service are two children
class Child:
    """One process of a service: where it listens, where its output goes, how often it was
    started again."""

    spec: ServiceSpec
    port: int
    name: str
    host: str = DEFAULT_HOST
    #: Its stdout and stderr (appended); None: this process's own.
    log: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    @property
    def base(self) -> str:
        """The base URL of its HTTP server."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Its PID while it runs."""
        process = self.process
        return process.pid if process is not None and process.poll() is None else None

    def running(self) -> bool:
        """True while its process is alive."""
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        """Its exit code once it has exited (negative: killed by that signal), else None."""
        return self.process.poll() if self.process is not None else None

    def kill(self) -> None:
        """SIGKILL it, as a crash would, and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of its log, for an error message."""
        if self.log is None:
            return "see its log above"
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


def banner(bootstrap: str, children: Sequence[Child]) -> list[str]:
    """Where everything listens: the broker, each service's links, every metrics endpoint."""

    def line(label: str, text: str) -> str:
        return f"  {label:<12} {text}"

    lines = [line("broker", f"{bootstrap} (embedded, in memory)")]
    for child in children:
        lines += [line(label, text.format(base=child.base)) for label, text in child.spec.links]
    lines.append(line("metrics", "  ".join(f"{child.base}/metrics" for child in children)))
    return lines


async def answers(http: httpx.AsyncClient, url: str) -> bool:
    """True when ``url`` answers 200 now."""
    import httpx

    with contextlib.suppress(httpx.HTTPError):
        return (await http.get(url)).status_code == 200
    return False


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(eq=False)
class Supervisor:
    """Starts, watches and stops the broker and the services' processes.

    ``env`` is every child's environment; ``broker`` is None when the services use a broker
    that is not this supervisor's. ``say`` reports restarts.
    """

    env: Mapping[str, str]
    broker: EmbeddedBroker | None = None
    cwd: Path | None = None
    log_dir: Path | None = None
    stop_signal: signal.Signals = signal.SIGINT
    say: Callable[[str], None] = _say
    children: list[Child] = field(default_factory=list)
    stopping: bool = False

    def add(self, spec: ServiceSpec, *, port: int, name: str | None = None) -> Child:
        """A process of ``spec`` on ``port``, supervised from now on (not started yet)."""
        name = name or spec.name
        log = self.log_dir / f"{name}.log" if self.log_dir is not None else None
        child = Child(spec, port, name, log=log)
        self.children.append(child)
        return child

    def start_broker(self) -> None:
        """Start the supervisor's broker, if it has one, and wait until it takes connections."""
        if self.broker is not None:
            self.broker.start()

    def child_environment(self) -> dict[str, str]:
        """A child's environment: ``env``, plus where the trends API listens for the router,
        which forwards the console's trends calls to it (unless ``env`` already says)."""
        env = dict(self.env)
        for child in self.children:
            if child.spec.name == "trends":
                env.setdefault("TRIAGE_ROUTER_TRENDS_URL", child.base)
        return env

    def launch(self, child: Child, *, port: int | None = None) -> None:
        """Start the child's process (on ``port`` when given: a new port for it); no wait."""
        if port is not None:
            child.port = port
        output = child.log.open("ab") if child.log is not None else None
        try:
            child.process = subprocess.Popen(  # noqa: S603 - own argv, no shell
                child.spec.argv(child.port),
                cwd=self.cwd,
                env=self.child_environment(),
                stdout=output,
                stderr=subprocess.STDOUT if output is not None else None,
                # Its own session: Ctrl-C in the terminal reaches the supervisor only, which
                # stops the services in order.
                start_new_session=True,
                preexec_fn=dies_with_this_process(),
            )
        finally:
            if output is not None:
                output.close()

    async def wait_ready(
        self, child: Child, *, timeout_s: float = READY_TIMEOUT_S, path: str | None = None
    ) -> bool:
        """Poll the child's readiness path (or ``path``) until it answers 200; False when the
        child exits first, when the time is up, or at once when the supervisor is stopping."""
        import httpx

        url = f"{child.base}{path or child.spec.ready_path}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        async with httpx.AsyncClient(timeout=2) as http:
            while not self.stopping and loop.time() < deadline:
                if child.exit_code() is not None:
                    return False
                if await answers(http, url):
                    return True
                await asyncio.sleep(0.2)
        return False

    async def start(
        self, child: Child, *, timeout_s: float = READY_TIMEOUT_S, path: str | None = None
    ) -> None:
        """Launch the child and wait until it is ready; StartError when it is not (returns
        quietly when the supervisor is asked to stop meanwhile)."""
        self.launch(child)
        if await self.wait_ready(child, timeout_s=timeout_s, path=path) or self.stopping:
            return
        code = child.exit_code()
        if code is not None:
            raise StartError(
                f"{child.name} exited with code {code} while starting: {child.log_tail()}"
            )
        raise StartError(
            f"{child.name} did not become ready in {timeout_s:.0f} s: {child.log_tail()}"
        )

    def request_stop(self, *_: object) -> None:
        """Ask the supervisor to stop (safe in a signal handler)."""
        self.stopping = True

    async def watch(self, *, until: asyncio.Future[object] | None = None) -> None:
        """Start again the broker or any service that exits, until asked to stop or until
        ``until`` is done."""
        while not self.stopping and not (until is not None and until.done()):
            if until is not None:
                await asyncio.wait([until], timeout=0.5)
            else:
                await asyncio.sleep(0.5)
            self._revive_broker()
            for child in self.children:
                if child.exit_code() is not None and not self.stopping:
                    await self._restart(child)

    def _revive_broker(self) -> None:
        if self.broker is not None and not self.broker.running() and not self.stopping:
            self.say("broker exited; restarting it (its in-memory data is lost)")
            self.broker.start()

    async def _restart(self, child: Child) -> None:
        child.restarts += 1
        self.say(
            f"{child.name} exited with code {child.exit_code()}; "
            f"restarting (restart {child.restarts})"
        )
        await asyncio.sleep(backoff_s(child.restarts))
        if not self.stopping:
            self.launch(child)

    async def run(self, on_ready: Callable[[], Awaitable[object] | None] | None = None) -> None:
        """``triage up``: start the broker, then each service in turn once the one before is
        ready; call ``on_ready`` (the banner, the demo); keep everything running until SIGINT,
        SIGTERM or SIGHUP, or until what ``on_ready`` returned is done. Everything started is
        stopped in every case."""
        loop = asyncio.get_running_loop()
        # A closed terminal (SIGHUP) stops everything in order, as Ctrl-C does; a hard kill
        # cannot be caught, so each child also gets the kernel's signal when this process dies.
        signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        for signum in signals:
            loop.add_signal_handler(signum, self.request_stop)
        job: asyncio.Future[object] | None = None
        try:
            self.start_broker()
            for child in self.children:
                await self.start(child)
                if self.stopping:
                    return
            started = on_ready() if on_ready is not None else None
            job = asyncio.ensure_future(started) if started is not None else None
            await self.watch(until=job)
        finally:
            if job is not None and not job.done():
                job.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await job
            self.stop()
            for signum in signals:
                loop.remove_signal_handler(signum)

    def stop(self, *, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop every running child (the stop signal, SIGKILL for any still running after
        ``timeout_s``), then the broker."""
        self.stopping = True
        running = [
            child.process
            for child in self.children
            if child.process is not None and child.process.poll() is None
        ]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(self.stop_signal)
        deadline = time.monotonic() + timeout_s
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if self.broker is not None:
            self.broker.stop()
