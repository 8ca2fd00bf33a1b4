"""The trends alert rules are valid and behave as their promtool unit tests say."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.debian import ensure_program

ROOT = Path(__file__).parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    return ensure_program("promtool", "prometheus")


def _promtool(promtool: str, *args: str) -> str:
    result = subprocess.run(
        [promtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def test_trends_rules_are_valid(promtool: str) -> None:
    out = _promtool(promtool, "check", "rules", str(PROMETHEUS / "trends_alerts.yml"))
    assert "3 rules found" in out


def test_trends_rules_pass_their_unit_tests(promtool: str) -> None:
    _promtool(promtool, "test", "rules", str(PROMETHEUS / "trends_alerts_test.yml"))


def test_rules_use_only_metrics_the_worker_exports() -> None:
    from services.trends.metrics import TrendsMetrics

    # Counters are collected under their name without the _total suffix.
    exported = {metric.name for metric in TrendsMetrics().registry.collect()}
    text = (PROMETHEUS / "trends_alerts.yml").read_text()
    used = {name.removesuffix("_total") for name in re.findall(r"\btriage_[a-z_]+", text)}
    assert len(used) == 3
    assert used <= exported, used - exported
