"""A service of the project run as its own process, as a user starts it."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx

from services.common.broker import free_port
from services.common.health import wait_until_ready

ROOT = Path(__file__).parents[2]


class ServiceProcess:
    """``triage <command> --port P`` with the given environment, its output in a log file."""

    def __init__(self, command: str, env: dict[str, str], log_dir: Path) -> None:
        self.command = command
        self.port = free_port()
        self.log = log_dir / f"{command}-{self.port}.log"
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", self.command, "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout_s: float = 90) -> None:
        assert self.process is not None
        ready = wait_until_ready(f"{self.base}/readyz", timeout_s=timeout_s, process=self.process)
        assert ready, self.log.read_text()[-5000:]

    def metrics(self) -> str:
        return httpx.get(f"{self.base}/metrics", timeout=5).text

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
