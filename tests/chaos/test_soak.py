"""A short soak (the scenario of ``bench/soak.py``): the whole stack for a minute at a steady
rate with simulated agents; memory of every process sampled, post-to-routing latency measured.
The bound on memory growth is lenient here: a minute is mostly warm-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.soak import SoakPlan, render, run_soak


@pytest.mark.timeout(420)
async def test_short_soak(tmp_path: Path) -> None:
    plan = SoakPlan(
        minutes=1.0,
        rate=5.0,
        warmup_s=20.0,
        sample_s=2.0,
        bounds_mb_per_min={"ingest": 30.0, "classifier": 60.0, "router": 60.0},
    )
    result = await run_soak(plan, tmp_path, say=lambda line: print(line, flush=True))
    report = render(result)
    assert result.ok, report
    assert set(result.memory) >= {"ingest", "classifier-0", "router-0", "broker"}, report
    offered = result.figures["post -> offered (s)"]
    assert offered["n"] > 0, report
    assert offered["p50"] < 30, report
