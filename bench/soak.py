"""Soak: the whole stack (broker, ingest, classifier, router, as `triage up` runs them, each its
own process) for ``--minutes`` at a steady ``--rate`` with simulated agents that accept, reply
to and resolve their offers.

Samples the resident memory of every process every ``--sample`` seconds and times each event
from its post (at the client) to its case's first ``offered`` event read from cases.events:
the moment the case is in front of an agent, which is the service's job. ``assigned`` adds the
simulated agent's reaction (poll interval and think time, set by this script), so it is printed
too but is not the figure to compare. Prints p50/p90/p99 latency, throughput, and per process
memory at start (after warm-up), end and peak with the growth per minute after warm-up; exits 1
when a process grows faster than its bound, or the rate was not sustained.

    .venv/bin/python bench/soak.py --minutes 10 --rate 5
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.soak import DEFAULT_BOUNDS_MB_PER_MIN, SoakPlan, SoakResult, render, run_soak


async def _run(plan: SoakPlan, workdir: Path) -> SoakResult:
    # SIGTERM cancels the run like Ctrl-C, so every process it started is stopped.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run_soak(plan, workdir, say=lambda line: print(line, flush=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=5.0, help="events posted a second")
    parser.add_argument("--warmup", type=float, default=120.0, help="seconds before growth counts")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    for service, bound in DEFAULT_BOUNDS_MB_PER_MIN.items():
        parser.add_argument(
            f"--max-{service}-growth",
            type=float,
            default=bound,
            help=f"MB a minute after warm-up (default {bound:g})",
        )
    parser.add_argument(
        "--max-words", type=int, default=60, help="longest corpus text posted (0: any)"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="logs (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    plan = SoakPlan(
        minutes=args.minutes,
        rate=args.rate,
        warmup_s=args.warmup,
        sample_s=args.sample,
        bounds_mb_per_min={
            service: getattr(args, f"max_{service}_growth") for service in DEFAULT_BOUNDS_MB_PER_MIN
        },
        max_words=args.max_words or None,
        seed=args.seed,
    )
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="triage-soak-"))
    started = time.monotonic()
    result = asyncio.run(_run(plan, workdir))
    print(render(result))
    print(f"wall time: {time.monotonic() - started:.0f}s")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
