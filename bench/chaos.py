"""Chaos on the embedded broker: events posted through ingest at a steady rate while every
classifier and router worker kind is killed with SIGKILL ``--kills`` times and restarted.

Starts its own broker and services (real processes, free ports), simulated agents that accept,
reply to and resolve their offers, and a short service-level policy so deadlines fall during
the run. Afterwards it checks the topics and the router's state (every accepted event in exactly
one case, no double assignment, every due deadline fired once, ...; see tests/support/verify.py)
and prints its figures. Exit status 1 when a check fails.

    .venv/bin/python bench/chaos.py --events 10000 --rate 20 --kills 3 --workers 1
    .venv/bin/python bench/chaos.py --events 10000 --rate 20 --kills 3 --workers 2
    .venv/bin/python bench/chaos.py --events 3000 --rate 20 --kills 2 --workers 2 --floors 2
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

from tests.support.chaos import ChaosPlan, ChaosRun, render, run_chaos


async def _run(plan: ChaosPlan, workdir: Path) -> ChaosRun:
    # SIGTERM cancels the run like Ctrl-C, so every process it started is stopped.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run_chaos(plan, workdir, say=lambda line: print(line, flush=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=20.0, help="events posted a second")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs per worker kind")
    parser.add_argument("--workers", type=int, choices=(1, 2), default=1, help="per kind")
    parser.add_argument("--settle-timeout", type=float, default=300.0)
    parser.add_argument("--log-level", default="INFO", help="of the services (their logs)")
    parser.add_argument("--workdir", type=Path, default=None, help="logs (default: a temp dir)")
    parser.add_argument(
        "--max-words", type=int, default=60, help="longest corpus text posted (0: any)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--floors",
        type=int,
        choices=(1, 2),
        default=1,
        help="2: the development roster on two floors (docs/routing.md#floors)",
    )
    parser.add_argument(
        "--transfers",
        type=float,
        default=0.05,
        help="with --floors 2, the share of accepted cases transferred to the other floor",
    )
    parser.add_argument(
        "--restart-delay",
        type=float,
        default=0.0,
        help="seconds a killed router worker stays down before it is started again",
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="triage-chaos-"))
    plan = ChaosPlan(
        events=args.events,
        rate=args.rate,
        kills=args.kills,
        workers=args.workers,
        settle_timeout_s=args.settle_timeout,
        log_level=args.log_level,
        max_words=args.max_words or None,
        seed=args.seed,
        floors=args.floors,
        transfer_share=args.transfers if args.floors > 1 else 0.0,
        restart_delay_s=args.restart_delay,
    )
    started = time.monotonic()
    run = asyncio.run(_run(plan, workdir))
    print(render(run))
    print(f"wall time: {time.monotonic() - started:.0f}s")
    return 0 if run.findings.ok else 1


if __name__ == "__main__":
    sys.exit(main())
