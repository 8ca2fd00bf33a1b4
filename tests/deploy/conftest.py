"""Fixtures of the deployment tests: Prometheus's tools from Debian's package."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


@pytest.fixture(scope="session")
def promtool() -> str:
    """The path of promtool, installing Debian's `prometheus` package when it is missing."""
    found = shutil.which("promtool")
    if found is None:
        log: list[str] = []
        for command in (
            ["apt-get", "update"],
            ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"],
        ):
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=540,
                check=False,
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            )
            log.append(f"$ {' '.join(command)} (exit {result.returncode})\n")
            log.append(result.stdout + result.stderr)
            if result.returncode != 0:
                pytest.fail("installing promtool failed:\n" + "".join(log), pytrace=False)
        found = shutil.which("promtool") or shutil.which("promtool", path="/usr/bin")
        if found is None:
            pytest.fail("apt installed prometheus but promtool is not on PATH:\n" + "".join(log))
    return found


@pytest.fixture(scope="session")
def prometheus(promtool: str) -> str:
    """The path of the Prometheus server (the same Debian package as promtool)."""
    found = shutil.which("prometheus") or shutil.which("prometheus", path="/usr/bin")
    if found is None:
        pytest.fail("the prometheus package is installed but the server is not on PATH")
    return found
