"""The chaos run: events posted through ingest at a steady rate while classifier and router
workers are killed with SIGKILL on a schedule and restarted; afterwards the topics and the
router's state are checked (:mod:`tests.support.verify`). ``bench/chaos.py`` runs it from the
command line; ``tests/chaos`` runs short versions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.topics import cases_events, feedback_classified, feedback_received
from tests.support.load import Agents, Customers, Posted, TopicTail
from tests.support.stack import Kind, Stack, StackOptions
from tests.support.verify import (
    CaseEventView,
    ClassifiedView,
    Findings,
    Window,
    case_event_view,
    check_cases,
    check_classified,
    check_ingest,
    classified_view,
    latencies,
    longest_gap,
    percentiles,
)

# With floors, the simulated agents transfer cases to a team of the other floor.
CROSS_FLOOR = {"care": "billing", "trust": "billing", "feedback": "billing", "billing": "care"}


@dataclass(frozen=True)
class ChaosPlan:
    """What to post, how fast, and how often to kill each kind of worker."""

    events: int = 10_000
    rate: float = 20.0
    kills: int = 3
    workers: int = 1
    settle_timeout_s: float = 300.0
    grace_s: float = 4.0
    log_level: str = "INFO"
    max_words: int | None = 60
    seed: int = 7
    floors: int = 1  # 2: the development roster on two floors (tests/support/stack.py FLOORS)
    transfer_share: float = 0.0  # accepted cases transferred to the other floor's team
    # Seconds a killed router worker stays down: the others take its partitions over, and get
    # some back from them, live, when it returns (0: restarted at once).
    restart_delay_s: float = 0.0


@dataclass
class Kill:
    """One worker killed and when the service worked again."""

    kind: Kind
    index: int
    scheduled_s: float
    killed_at: float = 0.0
    recovered_s: float = 0.0
    error: str | None = None
    committed: dict[int, int] = field(default_factory=dict)


@dataclass
class ChaosRun:
    """Everything a chaos run observed."""

    plan: ChaosPlan
    findings: Findings = field(default_factory=Findings)
    kills: list[Kill] = field(default_factory=list)
    posted: list[Posted] = field(default_factory=list)


def kill_times(duration_s: float, kills: int) -> tuple[list[float], list[float]]:
    """When to kill a classifier and a router worker (seconds after posting starts): spread
    over the posting, the two kinds interleaved."""
    step = duration_s / (kills + 1)
    classifier = [step * (k + 1) - step / 4 for k in range(kills)]
    router = [step * (k + 1) + step / 4 for k in range(kills)]
    return classifier, router


async def _killer(
    stack: Stack,
    kind: Kind,
    times: list[float],
    started: float,
    kills: list[Kill],
    say: Callable[[str], None],
    *,
    restart_delay_s: float = 0.0,
) -> None:
    for n, at in enumerate(times):
        delay = started + at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if kind == "router":
            active = await stack.active_router()
            index = stack.routers.index(active) if active is not None else 0
        else:
            index = n % len(stack.classifiers)
        kill = Kill(kind, index, at, killed_at=time.time())
        kills.append(kill)

        async def note_offsets(kill: Kill = kill) -> None:
            # Where the classifier group will resume: a record before these offsets that was
            # never classified is lost (reported with the missing events).
            with contextlib.suppress(Exception):
                kill.committed = await committed_offsets(stack)

        async def stay_down() -> None:
            await asyncio.sleep(restart_delay_s)

        after_kill: Callable[[], Awaitable[None]] | None = None
        if kind == "classifier":
            after_kill = note_offsets
        elif restart_delay_s > 0:
            after_kill = stay_down
        try:
            kill.recovered_s = await stack.kill_and_restart(kind, index, after_kill=after_kill)
        except Exception as exc:  # reported as a finding, the run goes on
            kill.error = f"{type(exc).__name__}: {exc}"
        say(
            f"  killed {kind}-{index} at {at:.0f}s: "
            + (kill.error or f"working again after {kill.recovered_s:.1f}s")
        )


async def committed_offsets(stack: Stack) -> dict[int, int]:
    """The classifier group's committed offsets on feedback.received, by partition (read
    without joining the group)."""
    topic = feedback_received.full_name(stack.topic_prefix)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.bootstrap,
        group_id=stack.env["TRIAGE_CLASSIFIER_APP_ID"],
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        found = {}
        for partition in range(feedback_received.partitions):
            offset = await consumer.committed(TopicPartition(topic, partition))
            if offset is not None:
                found[partition] = int(offset)
        return found
    finally:
        await consumer.stop()


async def _wait_until(check: Callable[[], bool], timeout_s: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if check():
            return True
        await asyncio.sleep(0.5)
    return check()


async def router_state(
    stack: Stack, tokens: list[str], case_ids: list[str]
) -> tuple[dict[str, int | None], dict[str, list[str]], list[str]]:
    """The active router's version of each case (None: it does not know the case), the cases
    each agent holds, and the agents over their capacity on a channel, as supervisors read
    them (with floors, one of each floor: a case is on one floor)."""
    versions: dict[str, int | None] = {}
    gate = asyncio.Semaphore(16)
    async with httpx.AsyncClient(timeout=15) as http:

        async def get(path: str, token: str) -> Any:
            headers = {"Authorization": f"Bearer {token}"}
            for _ in range(60):
                active = await stack.active_router()
                if active is not None:
                    with contextlib.suppress(httpx.HTTPError):
                        response = await http.get(f"{active.base}/v1{path}", headers=headers)
                        if response.status_code == 200:
                            return response.json()
                        if response.status_code == 404:
                            return None
                await asyncio.sleep(0.5)
            raise RuntimeError(f"the router did not answer {path}")

        async def version(case_id: str) -> None:
            case = None
            for token in tokens:
                async with gate:
                    case = await get(f"/cases/{case_id}", token)
                if case is not None:
                    break
            versions[case_id] = int(case["version"]) if case is not None else None

        await asyncio.gather(*(version(case_id) for case_id in case_ids))
        agents: dict[str, Any] = {}
        for token in tokens:
            cursor = ""
            while True:  # every page of the roster
                page = await get(f"/agents?limit=1000{cursor}", token)
                agents.update((a["profile"]["id"], a) for a in page["items"])
                if page["next_cursor"] is None:
                    break
                cursor = f"&cursor={page['next_cursor']}"
    holdings = {a["profile"]["id"]: [str(c) for c in a["cases"]] for a in agents.values()}
    over = [
        f"{a['profile']['id']} {channel}: {used} > {a['profile']['channels'].get(channel, 0)}"
        for a in agents.values()
        for channel, used in a["load"].items()
        if used > a["profile"]["channels"].get(channel, 0) + 1e-9
    ]
    return versions, holdings, over


async def run_chaos(
    plan: ChaosPlan, workdir: Path, *, say: Callable[[str], None] = print
) -> ChaosRun:
    """Run the whole scenario and check what it left; the caller reads ``findings``."""
    run = ChaosRun(plan)
    options = StackOptions(
        classifiers=plan.workers,
        routers=plan.workers,
        log_level=plan.log_level,
        floors=plan.floors,
    )
    stack = Stack(workdir, options)
    classified: list[ClassifiedView] = []
    events: list[CaseEventView] = []
    in_cases: set[str] = set()

    def on_classified(message: Any, read_at: float) -> None:
        classified.append(classified_view(message.value, read_at))

    def on_case_event(message: Any, read_at: float) -> None:
        view = case_event_view(message.value, read_at)
        events.append(view)
        in_cases.update(view.messages)

    received: dict[str, list[tuple[int, int]]] = {}

    def on_received(message: Any, read_at: float) -> None:
        event_id = json.loads(message.value)["event_id"]
        received.setdefault(event_id, []).append((message.partition, message.offset))

    tails: list[TopicTail] = []
    agents_task: asyncio.Task[None] | None = None
    say(
        f"chaos: {plan.events} events at {plan.rate:g}/s, {plan.kills} SIGKILL(s) per worker "
        f"kind, {plan.workers} worker(s) per kind; logs in {workdir}"
    )
    try:
        started = time.monotonic()
        await stack.start()
        say(f"  stack ready in {time.monotonic() - started:.1f}s")
        for spec, handler in (
            (feedback_received, on_received),
            (feedback_classified, on_classified),
            (cases_events, on_case_event),
        ):
            tail = TopicTail(stack.bootstrap, spec.full_name(stack.topic_prefix), handler)
            await tail.start()
            tails.append(tail)
        customers = Customers(
            lambda: stack.ingest.base if stack.ingest else "",
            rate=plan.rate,
            count=plan.events,
            run_id=stack.run_id,
            seed=plan.seed,
            max_words=plan.max_words,
        )
        agents = Agents(
            stack.router_bases,
            seed=plan.seed,
            transfers=CROSS_FLOOR if plan.floors > 1 else None,
            transfer_share=plan.transfer_share,
        )
        agents_task = asyncio.create_task(agents.run())
        duration = plan.events / plan.rate
        classifier_at, router_at = kill_times(duration, plan.kills)
        posting_started = time.monotonic()
        killers = [
            asyncio.create_task(
                _killer(stack, "classifier", classifier_at, posting_started, run.kills, say)
            ),
            asyncio.create_task(
                _killer(
                    stack,
                    "router",
                    router_at,
                    posting_started,
                    run.kills,
                    say,
                    restart_delay_s=plan.restart_delay_s,
                )
            ),
        ]
        progress = asyncio.create_task(
            _progress(customers, classified, events, in_cases, posting_started, say)
        )
        await customers.run()
        await asyncio.gather(*killers)
        run.posted = customers.posted
        accepted = {p.event_id: p for p in customers.posted if p.event_id is not None}
        settled = await _wait_until(lambda: set(accepted) <= in_cases, plan.settle_timeout_s)
        missing = len(set(accepted) - in_cases)
        progress.cancel()
        say(
            f"  posting done in {customers.finished_at - customers.started_at:.0f}s "
            f"({customers.achieved_rate:.1f}/s); every accepted event in a case: {settled}"
        )
        agents.stop()
        await agents_task
        agents_task = None
        await asyncio.sleep(plan.grace_s)
        checked_at = time.time()
        case_ids = sorted({e.case_id for e in events})
        tokens = agents.supervisor_tokens if plan.floors > 1 else [agents.supervisor_token]
        versions, holdings, over = await router_state(stack, tokens, case_ids)
        for tail in tails:
            await tail.catch_up()
        findings = run.findings
        findings.check("every accepted event reached a case in time")
        if not settled:
            findings.fail(
                "every accepted event reached a case in time",
                f"{missing} missing after {plan.settle_timeout_s:g}s",
            )
        findings.check("assignment: no agent over capacity")
        for line in over:
            findings.fail("assignment: no agent over capacity", line)
        findings.check("every killed worker came back")
        for kill in run.kills:
            if kill.error is not None:
                findings.fail("every killed worker came back", f"{kill.kind}: {kill.error}")
        check_ingest(findings, customers.posted, allow_503=False)
        check_received(
            findings,
            accepted,
            received,
            {c.event_id for c in classified},
            run.kills,
            committed_at_end=await committed_offsets(stack),
        )
        windows = [
            Window(k.killed_at, k.killed_at + k.recovered_s)
            for k in run.kills
            if k.kind == "classifier"
        ]
        check_classified(findings, accepted, classified, kills=windows)
        by_case = check_cases(
            findings,
            accepted,
            events,
            final_versions=versions,
            holdings=holdings,
            checked_at=checked_at,
            grace_s=plan.grace_s,
        )
        figures = findings.figures
        figures["events posted"] = len(customers.posted)
        figures["events accepted (202)"] = len(accepted)
        figures["post rate achieved (/s)"] = round(customers.achieved_rate, 1)
        figures["ingest answers"] = dict(customers.statuses)
        figures["agent actions"] = dict(agents.actions)
        figures["agent errors"] = dict(agents.errors)
        for kind, what in (
            ("classifier", "restarted worker ready after (s)"),
            ("router", "a router worker active again after (s)"),
        ):
            recovered = [k.recovered_s for k in run.kills if k.kind == kind and not k.error]
            figures[f"{kind} kills: {what}"] = [round(s, 1) for s in recovered]
        span = (customers.started_at, customers.finished_at)
        figures["longest pause in classified output while posting (s)"] = round(
            longest_gap((c.classified_at for c in classified), *span), 1
        )
        figures["longest pause in new cases while posting (s)"] = round(
            longest_gap((e.at for e in events if e.type == "created"), *span), 1
        )
        for kind, values in latencies(accepted, by_case).items():
            figures[f"post -> {kind} (s)"] = {
                k: round(v, 2) for k, v in percentiles(values).items()
            }
    finally:
        if agents_task is not None:
            agents_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await agents_task
        for tail in tails:
            await tail.stop()
        stack.stop()
    return run


async def _progress(
    customers: Customers,
    classified: list[ClassifiedView],
    events: list[CaseEventView],
    in_cases: set[str],
    started: float,
    say: Callable[[str], None],
) -> None:
    while True:
        await asyncio.sleep(15)
        accepted = sum(1 for p in customers.posted if p.accepted)
        say(
            f"  t={time.monotonic() - started:.0f}s posted {len(customers.posted)} accepted "
            f"{accepted} classified {len(classified)} in cases {len(in_cases)} "
            f"case events {len(events)}"
        )


def check_received(
    findings: Findings,
    accepted: dict[str, Posted],
    received: dict[str, list[tuple[int, int]]],
    classified: set[str],
    kills: list[Kill],
    *,
    committed_at_end: dict[int, int] | None = None,
) -> None:
    """Every accepted event is on feedback.received; an accepted event the classifier never
    tagged although the classifier group's committed offset (read at a classifier kill, or at
    the end of the run) had passed it was skipped by an offset commit. Where each untagged
    event lies, and the group's offset at the end, are a figure: an offset short of it means
    the record was never delivered to a worker that owned it."""
    findings.check("ingest: every accepted event on feedback.received")
    skipped = "classifier: no offset committed past an unclassified record"
    findings.check(skipped)
    for event_id, item in accepted.items():
        where = received.get(event_id)
        if not where:
            findings.fail("ingest: every accepted event on feedback.received", item.source_id)
            continue
        if event_id in classified:
            continue
        for partition, offset in where:
            at_end = (committed_at_end or {}).get(partition)
            untagged = findings.figures.setdefault(
                "untagged: partition, offset, committed at end", []
            )
            untagged.append((partition, offset, at_end))
            passed = [k for k in kills if k.committed.get(partition, -1) > offset]
            if at_end is not None and at_end > offset and not passed:
                findings.fail(
                    skipped,
                    f"{item.source_id} at partition {partition} offset {offset}; committed "
                    f"{at_end} at the end of the run",
                )
            if passed:
                findings.fail(
                    skipped,
                    f"{item.source_id} at partition {partition} offset {offset}; committed "
                    f"{passed[0].committed[partition]} when {passed[0].kind}-"
                    f"{passed[0].index} was killed at {passed[0].scheduled_s:.0f}s",
                )
    findings.figures["accepted events on feedback.received twice"] = sum(
        1 for event_id in accepted if len(received.get(event_id, ())) > 1
    )


def render(run: ChaosRun) -> str:
    """The figures and the checks of a run, as printed."""
    lines = ["figures:"]
    for name, value in run.findings.figures.items():
        lines.append(f"  {name}: {value}")
    lines.append("checks:")
    lines.append(run.findings.report())
    lines.append("result: " + ("PASS" if run.findings.ok else "FAIL"))
    return "\n".join(lines)
