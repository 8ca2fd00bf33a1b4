"""The router's role labeller (deploy/k8s/base/router_role.py) against a fake Kubernetes API and
a fake router: it labels its pod active while the router's /readyz answers 200, standby after
it stops, and the Service selects the pod by that label."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).parents[2] / "deploy" / "k8s" / "base" / "router_role.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("router_role", SCRIPT)
    assert spec is not None, f"{SCRIPT} is missing"
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@dataclass
class Fakes:
    """The router's /readyz (status settable) and the API server (records the patches)."""

    ready_status: int = 503
    patches: list[dict[str, Any]] = field(default_factory=list)
    ready_url: str = ""
    api_url: str = ""


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    state = Fakes()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            assert self.path == "/readyz"
            self.send_response(state.ready_status)
            self.end_headers()

        def do_PATCH(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.patches.append(
                {
                    "path": self.path,
                    "auth": self.headers["Authorization"],
                    "type": self.headers["Content-Type"],
                    "body": body,
                }
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    state.ready_url, state.api_url = f"{base}/readyz", base
    yield state
    server.shutdown()
    server.server_close()


def _labeller(module: ModuleType, fakes: Fakes, token: Path) -> Any:
    token.write_text("secret-token\n")
    config = module.Config(
        ready_url=fakes.ready_url,
        api_url=fakes.api_url,
        namespace="triage",
        pod="triage-router-abc",
        token_file=str(token),
        ca_file=None,
    )
    return module.Labeller(config)


def _roles(fakes: Fakes) -> list[str]:
    return [p["body"]["metadata"]["labels"]["complaint-triage/role"] for p in fakes.patches]


def test_a_ready_router_is_labelled_active_at_once(fakes: Fakes, tmp_path: Path) -> None:
    module = _script()
    labeller = _labeller(module, fakes, tmp_path / "token")
    labeller.step(now=0.0)
    assert _roles(fakes) == ["standby"]
    fakes.ready_status = 200
    labeller.step(now=2.0)
    assert _roles(fakes) == ["standby", "active"]
    second = fakes.patches[1]
    assert second["path"] == "/api/v1/namespaces/triage/pods/triage-router-abc"
    assert second["auth"] == "Bearer secret-token"
    assert second["type"] == "application/merge-patch+json"
    labeller.step(now=4.0)
    assert len(fakes.patches) == 2, "an unchanged role is not patched again"


def test_a_standby_loses_the_label_after_two_failed_checks(fakes: Fakes, tmp_path: Path) -> None:
    module = _script()
    labeller = _labeller(module, fakes, tmp_path / "token")
    fakes.ready_status = 200
    labeller.step(now=0.0)
    fakes.ready_status = 503
    labeller.step(now=2.0)  # one slow or refused check does not move the agents' traffic
    assert _roles(fakes) == ["active"]
    labeller.step(now=4.0)
    assert _roles(fakes) == ["active", "standby"]


def test_an_unreachable_router_is_standby_and_the_label_is_reasserted(
    fakes: Fakes, tmp_path: Path
) -> None:
    module = _script()
    labeller = _labeller(module, fakes, tmp_path / "token")
    labeller.config = module.Config(
        **{**labeller.config.__dict__, "ready_url": "http://127.0.0.1:9/readyz"}
    )
    labeller.step(now=0.0)
    labeller.step(now=2.0)
    assert _roles(fakes) == ["standby"]
    labeller.step(now=2.0 + module.REASSERT_S)
    assert _roles(fakes) == ["standby", "standby"], "the label is set again now and then"


def test_the_script_runs_alone_with_the_standard_library(fakes: Fakes, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("secret-token")
    fakes.ready_status = 200
    env = {
        "PATH": os.environ.get("PATH", ""),
        "POD_NAME": "triage-router-xyz",
        "POD_NAMESPACE": "triage",
        "TRIAGE_ROLE_READY_URL": fakes.ready_url,
        "TRIAGE_ROLE_API_URL": fakes.api_url,
        "TRIAGE_ROLE_TOKEN_FILE": str(token),
        "TRIAGE_ROLE_INTERVAL_S": "0.2",
    }
    log = (tmp_path / "role.log").open("wb")
    process = subprocess.Popen([sys.executable, "-I", str(SCRIPT)], env=env, stderr=log)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "active" not in _roles(fakes):
            time.sleep(0.1)
        assert _roles(fakes) == ["active"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0, (tmp_path / "role.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        log.close()
