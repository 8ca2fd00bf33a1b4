"""Fixtures of the deployment tests: Prometheus's tools from Debian's package."""

from __future__ import annotations

import shutil

import pytest

from tests.support.debian import ensure_program


@pytest.fixture(scope="session")
def promtool() -> str:
    """The path of promtool, installing Debian's `prometheus` package when it is missing."""
    return ensure_program("promtool", "prometheus")


@pytest.fixture(scope="session")
def prometheus(promtool: str) -> str:
    """The path of the Prometheus server (the same Debian package as promtool)."""
    found = shutil.which("prometheus") or shutil.which("prometheus", path="/usr/bin")
    if found is None:
        pytest.fail("the prometheus package is installed but the server is not on PATH")
    return found
