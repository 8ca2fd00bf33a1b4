"""Chaos on the embedded broker (the scenario of ``bench/chaos.py``): events posted at a steady
rate through ingest while classifier and router workers are killed with SIGKILL and restarted;
afterwards every accepted event is in exactly one case, no case is assigned twice, and every
deadline that fell due fired exactly once (``tests/support/verify.py`` lists the checks).

The default run has a short version (300 events, one kill of each kind) with two workers of each
kind (rebalance across classifier workers, failover to the standby router, restarts). ``-m slow``
adds the same with one worker of each kind, and the full runs: 10,000 events, three kills of
each kind, with one and with two workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.chaos import ChaosPlan, render, run_chaos

FULL_RATE = 10.0  # events a second the 2-core CI machines sustain with the kills (README)


def _print(line: str) -> None:
    print(line, flush=True)


@pytest.mark.timeout(480)
@pytest.mark.parametrize(
    "workers",
    # Two workers of each kind cover restart, rebalance and failover at once; the one-worker
    # short run is kept with the long ones, so the default run stays short.
    [pytest.param(1, marks=pytest.mark.slow), 2],
)
async def test_short_chaos_run(workers: int, tmp_path: Path) -> None:
    plan = ChaosPlan(events=300, rate=10.0, kills=1, workers=workers, settle_timeout_s=240)
    run = await run_chaos(plan, tmp_path, say=_print)
    report = render(run)
    assert run.findings.ok, report
    assert len(run.kills) == 2, report
    figures = run.findings.figures
    for kind in ("assigned", "resolved", "sla_warning", "sla_breached"):
        assert figures[f"case events: {kind}"] > 0, f"{kind} never happened:\n{report}"


@pytest.mark.slow
@pytest.mark.timeout(3 * 3600)
@pytest.mark.parametrize("workers", [1, 2])
async def test_full_chaos_run(workers: int, tmp_path: Path) -> None:
    plan = ChaosPlan(events=10_000, rate=FULL_RATE, kills=3, workers=workers)
    run = await run_chaos(plan, tmp_path, say=_print)
    assert run.findings.ok, render(run)
    assert len(run.kills) == 6
