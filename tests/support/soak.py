"""The soak run: the whole stack for a while at a steady rate with simulated agents, sampling
every process's memory and timing each event from its post to its case's routing. ``bench/
soak.py`` runs it from the command line; ``tests/chaos/test_soak.py`` runs a short version."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.common.topics import cases_events
from tests.support.load import Agents, Customers, MemorySampler, TopicTail
from tests.support.stack import Stack, StackOptions
from tests.support.verify import (
    CaseEventView,
    case_event_view,
    dedup_events,
    latencies,
    percentiles,
)

MB = 1024 * 1024

#: Service levels of the soak: the fault runs' targets, but breaches only notify and raise the
#: priority, so the floor reaches a steady state the simulated agents can keep up with.
SOAK_SLA = """
warning_share: 0.5
on_warning: [notify]
on_breach: [notify, raise_priority]
calendars:
  always: {timezone: UTC, always_open: true}
  emea: {timezone: UTC, always_open: true}
targets:
  chat:
    "*": {first_response: 10s, resolution: 60s}
  "*":
    "*": {first_response: 20s, resolution: 120s}
"""

#: Largest growth of resident memory after warm-up, in MB a minute, at the soak's rate. The
#: router keeps every case of a soak (resolved ones, compressed after an hour, for
#: ``TRIAGE_ROUTER_RETENTION_DAYS``),
#: so its memory grows with the cases created; the bound allows that and no more. The embedded
#: broker keeps every record in memory by design and is reported, not bounded.
DEFAULT_BOUNDS_MB_PER_MIN = {"ingest": 2.0, "classifier": 5.0, "router": 15.0}


@dataclass(frozen=True)
class SoakPlan:
    """How long, how fast, and the memory bounds."""

    minutes: float = 10.0
    rate: float = 5.0
    warmup_s: float = 60.0
    sample_s: float = 5.0
    bounds_mb_per_min: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_BOUNDS_MB_PER_MIN)
    )
    drain_timeout_s: float = 120.0
    log_level: str = "WARNING"
    max_words: int | None = 60
    seed: int = 7


@dataclass
class MemoryFigures:
    """Resident memory of one process over the run (MB)."""

    start: float
    end: float
    peak: float
    growth_mb_per_min: float


@dataclass
class SoakResult:
    """What the soak measured and whether it stayed within its bounds."""

    plan: SoakPlan
    figures: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, MemoryFigures] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def memory_figures(samples: list[tuple[float, float]], warmup_s: float) -> MemoryFigures | None:
    """Start (first sample after warm-up), end, peak and the least-squares growth a minute
    after warm-up of ``(elapsed s, MB)`` samples."""
    after = [(t, mb) for t, mb in samples if t >= warmup_s]
    if len(after) < 2:
        return None
    slope, _ = statistics.linear_regression([t for t, _ in after], [mb for _, mb in after])
    return MemoryFigures(
        start=after[0][1],
        end=after[-1][1],
        peak=max(mb for _, mb in samples),
        growth_mb_per_min=slope * 60,
    )


async def run_soak(
    plan: SoakPlan, workdir: Path, *, say: Callable[[str], None] = print
) -> SoakResult:
    """Run the stack at ``plan.rate`` for ``plan.minutes`` and measure it."""
    result = SoakResult(plan)
    stack = Stack(workdir, StackOptions(sla_text=SOAK_SLA, log_level=plan.log_level))
    events: list[CaseEventView] = []
    in_cases: set[str] = set()

    def on_case_event(message: Any, read_at: float) -> None:
        view = case_event_view(message.value, read_at)
        events.append(view)
        in_cases.update(view.messages)

    tail: TopicTail | None = None
    background: list[asyncio.Task[None]] = []
    count = int(plan.rate * plan.minutes * 60)
    say(
        f"soak: {plan.minutes:g} min at {plan.rate:g} events/s ({count} events), memory every "
        f"{plan.sample_s:g}s; logs in {workdir}"
    )
    try:
        await stack.start()
        tail = TopicTail(stack.bootstrap, cases_events.full_name(stack.topic_prefix), on_case_event)
        await tail.start()
        customers = Customers(
            lambda: stack.ingest.base if stack.ingest else "",
            rate=plan.rate,
            count=count,
            run_id=stack.run_id,
            seed=plan.seed,
            max_words=plan.max_words,
        )
        # Quick agents: the soak measures the services, so agents should rarely be the queue.
        agents = Agents(
            stack.router_bases,
            think_s=(0.1, 0.5),
            respond_s=(0.2, 1.0),
            resolve_s=(0.5, 2.0),
            seed=plan.seed,
        )
        sampler = MemorySampler(stack.pids, plan.sample_s)
        background = [
            asyncio.create_task(agents.run()),
            asyncio.create_task(sampler.run()),
            asyncio.create_task(_progress(customers, in_cases, sampler, say)),
        ]
        await customers.run()
        posting_s = customers.finished_at - customers.started_at
        accepted = {p.event_id: p for p in customers.posted if p.event_id is not None}
        drained_at = await _drain(lambda: set(accepted) <= in_cases, plan.drain_timeout_s)
        sampler.sample()
        agents.stop()
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        background = []
        await tail.catch_up()
        by_case, _ = dedup_events(events)
        figures = result.figures
        figures["events posted"] = len(customers.posted)
        figures["events accepted (202)"] = len(accepted)
        figures["ingest answers"] = dict(customers.statuses)
        figures["post rate achieved (/s)"] = round(customers.achieved_rate, 2)
        figures["posting (s)"] = round(posting_s, 1)
        figures["cases"] = len(by_case)
        figures["throughput: events in cases (/s)"] = round(
            len(set(accepted) & in_cases) / max(posting_s, 1e-9), 2
        )
        figures["backlog drained (s after the last post)"] = (
            round(drained_at, 1) if drained_at is not None else "no"
        )
        figures["agent actions"] = dict(agents.actions)
        figures["agent API calls p50/p99 (s)"] = {
            what: (round(cuts["p50"], 3), round(cuts["p99"], 3))
            for what, values in sorted(agents.durations.items())
            if (cuts := percentiles(values))
        }
        for kind, values in latencies(accepted, by_case).items():
            figures[f"post -> {kind} (s)"] = {
                k: round(v, 2) for k, v in percentiles(values).items()
            } | {"n": len(values)}
        per_process: dict[str, list[tuple[float, float]]] = {}
        for sample in sampler.samples:
            for name, rss in sample.rss.items():
                per_process.setdefault(name, []).append((sample.elapsed_s, rss / MB))
        for name, samples in sorted(per_process.items()):
            found = memory_figures(samples, plan.warmup_s)
            if found is None:
                continue
            result.memory[name] = found
            service = name.split("-")[0]
            bound = plan.bounds_mb_per_min.get(service)
            if bound is not None and found.growth_mb_per_min > bound:
                result.failures.append(
                    f"{name} grew {found.growth_mb_per_min:.2f} MB/min after warm-up "
                    f"(bound {bound:g})"
                )
        if drained_at is None:
            missing = len(set(accepted) - in_cases)
            result.failures.append(
                f"{missing} accepted events not in a case {plan.drain_timeout_s:g}s after the "
                "last post: the rate is not sustainable"
            )
        if len(accepted) < len(customers.posted):
            result.failures.append(f"{len(customers.posted) - len(accepted)} posts not accepted")
    finally:
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if tail is not None:
            await tail.stop()
        stack.stop()
    return result


async def _drain(done: Callable[[], bool], timeout_s: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if done():
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    return None


async def _progress(
    customers: Customers, in_cases: set[str], sampler: MemorySampler, say: Callable[[str], None]
) -> None:
    while True:
        await asyncio.sleep(30)
        accepted = sum(1 for p in customers.posted if p.accepted)
        rss = sampler.samples[-1].rss if sampler.samples else {}
        memory = " ".join(f"{n}={v / MB:.0f}MB" for n, v in sorted(rss.items()))
        say(
            f"  posted {len(customers.posted)} accepted {accepted} in cases {len(in_cases)}; "
            f"{memory}"
        )


def render(result: SoakResult) -> str:
    """The figures, the memory table and the verdict, as printed."""
    lines = ["figures:"]
    for name, value in result.figures.items():
        lines.append(f"  {name}: {value}")
    lines.append(f"memory (MB; start = first sample after {result.plan.warmup_s:g}s warm-up):")
    lines.append(f"  {'process':<14}{'start':>8}{'end':>8}{'peak':>8}{'MB/min':>9}{'bound':>8}")
    for name, m in result.memory.items():
        bound = result.plan.bounds_mb_per_min.get(name.split("-")[0])
        lines.append(
            f"  {name:<14}{m.start:>8.1f}{m.end:>8.1f}{m.peak:>8.1f}"
            f"{m.growth_mb_per_min:>9.2f}{(f'{bound:g}' if bound is not None else '-'):>8}"
        )
    for failure in result.failures:
        lines.append(f"FAIL {failure}")
    lines.append("result: " + ("PASS" if result.ok else "FAIL"))
    return "\n".join(lines)
