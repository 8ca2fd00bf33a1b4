"""Label this router pod `complaint-triage/role: active` or `standby`, for the Service to select.

The router worker that owns the one partition of router.inbox is the active one: its /readyz
answers 200, a standby's 503. Kubernetes readiness uses /healthz instead, so every healthy pod
is Ready and rollouts complete; this script, a second container of the router's pod, turns the
router's own answer into a label, and the Service `triage-router` selects `role: active` only.
Kafka's group assignment stays the single source of truth for who applies commands; the label
only steers the agents' HTTP traffic (a standby that still receives some answers 503 with
Retry-After, as before).

Standard library only (it runs in the service image with its own, narrow service-account token).
Settings come from the environment: POD_NAME and POD_NAMESPACE (downward API), and optionally
TRIAGE_ROLE_READY_URL, TRIAGE_ROLE_API_URL, TRIAGE_ROLE_TOKEN_FILE, TRIAGE_ROLE_CA_FILE,
TRIAGE_ROLE_INTERVAL_S.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from types import FrameType

LABEL = "complaint-triage/role"
ACTIVE, STANDBY = "active", "standby"
DEMOTE_AFTER = 2  # failed checks in a row before the label moves away from an active pod
REASSERT_S = 60.0  # set the label again now and then, in case something else changed it
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass(frozen=True)
class Config:
    """Where the router answers, and the API server that holds this pod."""

    ready_url: str
    api_url: str
    namespace: str
    pod: str
    token_file: str
    ca_file: str | None
    interval_s: float = 2.0

    @classmethod
    def from_environment(cls) -> Config:
        env = os.environ
        api = env.get("TRIAGE_ROLE_API_URL") or (
            f"https://{env['KUBERNETES_SERVICE_HOST']}:{env.get('KUBERNETES_SERVICE_PORT', '443')}"
        )
        return cls(
            ready_url=env.get("TRIAGE_ROLE_READY_URL", "http://127.0.0.1:8082/readyz"),
            api_url=api.rstrip("/"),
            namespace=env["POD_NAMESPACE"],
            pod=env["POD_NAME"],
            token_file=env.get("TRIAGE_ROLE_TOKEN_FILE", f"{SERVICE_ACCOUNT}/token"),
            ca_file=env.get("TRIAGE_ROLE_CA_FILE", f"{SERVICE_ACCOUNT}/ca.crt")
            if api.startswith("https:")
            else None,
            interval_s=float(env.get("TRIAGE_ROLE_INTERVAL_S", "2")),
        )


def _log(message: str, **fields: object) -> None:
    print(json.dumps({"event": message, "logger": "router-role", **fields}), file=sys.stderr)


class Labeller:
    """Checks the router and patches the pod's role label when it should change."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.applied: str | None = None
        self.applied_at = 0.0
        self.failures = 0

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.config.ready_url, timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):  # 503 (standby) included
            return False

    def wanted(self, ready: bool) -> str:
        if ready:
            self.failures = 0
            return ACTIVE
        self.failures += 1
        if self.applied == ACTIVE and self.failures < DEMOTE_AFTER:
            return ACTIVE
        return STANDBY

    def patch(self, role: str) -> None:
        config = self.config
        with open(config.token_file, encoding="ascii") as file:  # rotated by the kubelet
            token = file.read().strip()
        request = urllib.request.Request(  # noqa: S310 - the API server's URL
            f"{config.api_url}/api/v1/namespaces/{config.namespace}/pods/{config.pod}",
            data=json.dumps({"metadata": {"labels": {LABEL: role}}}).encode(),
            method="PATCH",
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/merge-patch+json",
                "Accept": "application/json",
            },
        )
        context = ssl.create_default_context(cafile=config.ca_file) if config.ca_file else None
        with urllib.request.urlopen(request, timeout=5, context=context) as response:  # noqa: S310
            response.read()

    def step(self, *, now: float) -> None:
        role = self.wanted(self.ready())
        if role == self.applied and now - self.applied_at < REASSERT_S:
            return
        try:
            self.patch(role)
        except (urllib.error.URLError, OSError) as exc:  # the API server or the token: retried
            _log("label not set", role=role, error=repr(exc))
            return
        if role != self.applied:
            _log("role labelled", role=role, pod=self.config.pod)
        self.applied, self.applied_at = role, now


def main() -> int:
    config = Config.from_environment()
    labeller = Labeller(config)
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        labeller.step(now=time.monotonic())
        deadline = time.monotonic() + config.interval_s
        while not stopping and time.monotonic() < deadline:
            time.sleep(min(0.2, config.interval_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
