"""Programs the tests drive that come from Debian's packages, installed when missing."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def ensure_program(program: str, package: str) -> str:
    """The path of ``program``, installing Debian's ``package`` with apt when it is missing;
    the test fails with apt's output when that cannot be done."""
    found = shutil.which(program) or shutil.which(program, path="/usr/bin")
    if found is not None:
        return found
    log: list[str] = []
    for command in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", package],
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
            pytest.fail(f"installing {package} failed:\n" + "".join(log), pytrace=False)
    found = shutil.which(program) or shutil.which(program, path="/usr/bin")
    if found is None:
        pytest.fail(f"apt installed {package} but {program} is not on PATH:\n" + "".join(log))
    return found
