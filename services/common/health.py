"""Waiting for a service to report ready on its ``/readyz`` endpoint."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request


def wait_until_ready(
    url: str, *, timeout_s: float, process: subprocess.Popen[bytes] | None = None
) -> bool:
    """Poll ``url`` until it answers 200; False on timeout or when ``process`` exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback URL
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False
