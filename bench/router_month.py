"""A month of the router's engine: memory and idle-tick cost at day 1, 7 and 30.

The pure engine (``Engine.apply``, the code the worker runs) on a simulated clock, fed
``--per-day`` classified messages a day for ``--days`` days, spread over the day: most open a
case; some are replies to an open case, and some reply to a resolved case, days later (within
the reopen window they reopen it, after it they open a new case). Simulated agents accept what
they are offered within seconds, answer within minutes and resolve within the hour; a
supervisor records a CSAT score for some resolved cases days later; every agent takes a short
break every four hours. Ticks come when the engine says something is due (``next_due``, on the
worker's half-second grid), as the worker's clock sends them. A keys-only copy of the worker's
cases table is kept from the outcomes (the changed cases written, ``Outcome.forgotten``
deleted) and checked against what the engine keeps.

At the end of each checkpoint day it prints the cases held (whole and compressed), the engine's
memory (a walk of the objects its case state holds), the process's resident memory, and the
cost of an idle tick (median of many, nothing due), and ends with one line:

    memory day7=<MB> day30=<MB> tick day7=<ms> day30=<ms>

(resident memory of the process, and the idle tick). The goal: both flat after the reopen
window, day 30 within 1.5x of day 7.

    .venv/bin/python bench/router_month.py [--days 30] [--per-day 10000] [--agents 60]
"""

from __future__ import annotations

import argparse
import gc
import heapq
import itertools
import os
import random
import statistics
import sys
import time
import types
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.common.cases import CaseEventType, Presence
from services.common.messages import (
    Category,
    Channel,
    Customer,
    CustomerHistory,
    Facts,
    FeedbackClassified,
    FeedbackReceived,
    Source,
    Tag,
    Thread,
    event_id_for,
)
from services.router.app import load_sla_file
from services.router.commands import (
    COMMAND_TYPES,
    Action,
    ClassifiedIn,
    Inbound,
    SetPresence,
    Tick,
)
from services.router.engine import Engine, EngineSettings, Outcome
from services.router.roster import parse_roster

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
DAY = timedelta(days=1)
TICK_GRID_S = 0.5  # the worker's clock checks every half second
CHANNELS = [Channel.EMAIL, Channel.EMAIL, Channel.CHAT, Channel.SOCIAL]
CATEGORIES = [c.value for c in Category]
TEXT = (
    "order parcel delivery late refund never arrived customer service waited weeks nobody "
    "answers email phone promised broken item replacement charged twice account bill invoice "
    "please help disappointed again manager store courier tracking number says delivered but "
    "it is not here I have called three times and every time I am told to wait another few "
    "days this is unacceptable the product stopped working after one week the screen cracked "
    "when I opened the box I want my money back or a new one sent today my subscription was "
    "renewed without asking and I cannot find how to cancel it your website keeps logging me "
    "out the app crashes whenever I try to pay the agent on the chat was rude and closed the "
    "conversation thank you for the quick reply it solved the problem great service"
)
WORDS = TEXT.split()


def roster(agents: int, rng: random.Random) -> Any:
    profiles: list[dict[str, Any]] = [
        {
            "id": "boss",
            "name": "Boss",
            "team": "care",
            "tier": "supervisor",
            "skills": dict.fromkeys(CATEGORIES, 3),
            "languages": ["en"],
            "channels": {"email": 1},
            "presence": "away",  # records CSAT scores, takes no cases
        }
    ]
    for n in range(agents):
        tier = "frontline" if n % 10 < 8 else "senior" if n % 10 < 9 else "supervisor"
        profiles.append(
            {
                "id": f"agent-{n}",
                "name": f"Agent {n}",
                "team": "care",
                "tier": tier,
                # Frontline agents have a few skills each (every category is covered by a
                # fifth of them); seniors and supervisors, who take escalations, have all.
                "skills": {
                    c: rng.randint(2, 5)
                    for c in (
                        [CATEGORIES[n % len(CATEGORIES)], *rng.sample(CATEGORIES, k=3)]
                        if tier == "frontline"
                        else CATEGORIES
                    )
                },
                "languages": ["en"],
                "channels": {"email": 4, "chat": 3, "social": 3},
                "authority": {
                    "refund": 1000,
                    "fee_waiver": 500,
                    "voucher": 200,
                    "replacement": 1000,
                    "goodwill_credit": 500,
                },
                "hostile": tier != "frontline" or rng.random() < 0.6,
                "presence": "available",
            }
        )
    return parse_roster(
        {
            "default_team": "care",
            "teams": [{"id": "care", "name": "Care", "categories": CATEGORIES}],
            "agents": profiles,
        }
    )


@dataclass
class Thread_:
    customer: str
    channel: Channel
    last_message: str
    case_id: uuid.UUID | None = None


@dataclass
class Sim:
    """The simulated floor: inputs and agents' actions in time order."""

    engine: Engine
    rng: random.Random
    now: datetime = T0
    seq: Iterator[int] = field(default_factory=itertools.count)
    pending: list[tuple[datetime, int, Any]] = field(default_factory=list)
    threads: list[Thread_] = field(default_factory=list)
    resolved: list[Thread_] = field(default_factory=list)  # a ring of older threads
    ring: int = 60_000
    ring_next: int = 0
    table: set[uuid.UUID] = field(default_factory=set)
    messages: int = 0
    applied: int = 0
    ticks: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def at(self, when: datetime, item: Any) -> None:
        heapq.heappush(self.pending, (when, next(self.seq), item))

    def apply(self, message: Inbound, now: datetime) -> Outcome:
        out = self.engine.apply(message, now)
        self.applied += 1
        self.table.update(out.cases)
        self.table.difference_update(out.forgotten)
        for event in out.events:
            self.kinds[event.type.value] = self.kinds.get(event.type.value, 0) + 1
            if event.type == CaseEventType.OFFERED and event.agent_id:
                delay = timedelta(seconds=self.rng.uniform(3, 40))
                self.at(now + delay, ("agent", Action.ACCEPT, event.agent_id, event.case_id))
            elif event.type == CaseEventType.ASSIGNED and event.agent_id:
                agent = event.agent_id
                answer = now + timedelta(seconds=self.rng.uniform(20, 150))
                done = answer + timedelta(minutes=self.rng.uniform(3, 50))
                self.at(answer, ("agent", Action.RESPOND, agent, event.case_id))
                self.at(done, ("agent", Action.RESOLVE, agent, event.case_id))
            elif event.type == CaseEventType.RESOLVED and self.rng.random() < 0.1:
                later = now + timedelta(days=self.rng.uniform(0.5, 5))
                self.at(later, ("agent", Action.CSAT, "boss", event.case_id))
        return out

    def tick_until(self, until: datetime) -> None:
        """The worker's clock: a tick on the half-second grid once something is due."""
        while (due := self.engine.next_due()) is not None and due <= until:
            grid = -(-due.timestamp() // TICK_GRID_S) * TICK_GRID_S
            at = min(datetime.fromtimestamp(grid, UTC), until)
            self.apply(Tick(at=at), at)
            self.ticks += 1

    def handle(self, item: tuple[Any, ...], when: datetime) -> None:
        if item[0] == "make":
            self.messages += 1
            self.apply(self.make(item[1], item[2], when), when)
            return
        if item[0] == "presence":
            _, presence, agent_id = item
            presence_command = SetPresence(
                command_id=uuid.uuid4(), actor=agent_id, at=when, presence=presence
            )
            self.apply(presence_command, when)
            return
        _, action, actor, case_id = item
        extra: dict[str, Any] = {"score": self.rng.randint(1, 5)} if action == Action.CSAT else {}
        if action == Action.RESPOND:
            extra["chars"] = 200
        command = COMMAND_TYPES[action](
            command_id=uuid.uuid4(), actor=actor, at=when, **{"case_id": case_id, **extra}
        )
        self.apply(command, when)

    def schedule_day(self, day: int, per_day: int) -> None:
        start = T0 + day * DAY
        times = sorted(self.rng.uniform(0, 86400) for _ in range(per_day))
        for n, offset in enumerate(times):
            self.at(start + timedelta(seconds=offset), ("make", day, n))
        # Every agent takes a ten-minute break every four hours (which also ends a run of
        # hostile cases: an agent at the limit gets none until their presence changes).
        for n, agent_id in enumerate(a for a in self.engine.agents if a != "boss"):
            first = timedelta(minutes=(n * 17) % 240)
            for k in range(6):
                away = start + first + k * timedelta(hours=4)
                self.at(away, ("presence", Presence.AWAY, agent_id))
                self.at(away + timedelta(minutes=10), ("presence", Presence.AVAILABLE, agent_id))

    def make(self, day: int, n: int, when: datetime) -> ClassifiedIn:
        rng = self.rng
        draw = rng.random()
        thread: Thread_ | None = None
        if draw < 0.1 and self.threads:
            thread = rng.choice(self.threads[-300:])  # a reply while the case is open
        elif draw < 0.2 and self.resolved:
            thread = rng.choice(self.resolved)  # resolved, often days ago
        message_id = f"<d{day}n{n}@sim>"
        if thread is None:
            thread = Thread_(customer=f"c-{day}-{n}", channel=rng.choice(CHANNELS), last_message="")
            self.threads.append(thread)
            if len(self.threads) > 2000:
                for old in self.threads[:1000]:
                    if len(self.resolved) < self.ring:
                        self.resolved.append(old)
                    else:
                        self.resolved[self.ring_next] = old
                        self.ring_next = (self.ring_next + 1) % self.ring
                del self.threads[:1000]
        reply_to = thread.last_message or None
        thread.last_message = message_id
        source = f"sim-{day}-{n}"
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(15, 250)))
        received = FeedbackReceived(
            event_id=event_id_for("sim", source),
            source=Source(platform="sim", event_id=source),
            channel=thread.channel,
            customer=Customer(id=thread.customer),
            subject="About my order" if thread.channel == Channel.EMAIL else None,
            text=text,
            thread=Thread(
                message_id=message_id if thread.channel == Channel.EMAIL else None,
                in_reply_to=reply_to if thread.channel == Channel.EMAIL else None,
                conversation_id=None if thread.channel == Channel.EMAIL else thread.customer,
            ),
            received_at=when,
        )
        negative = rng.random()
        return ClassifiedIn(
            at=when,
            feedback=FeedbackClassified(
                event_id=received.event_id,
                feedback=received,
                sentiment=Tag(label="negative", probability=0.5 + negative / 2),
                sentiment_score=-negative,
                category=Tag(label=rng.choice(CATEGORIES), probability=0.8),
                difficult=Tag(
                    label=rng.choice(["none", "none", "none", "angry", "demanding"]),
                    probability=0.7,
                ),
                needs_review=False,
                facts=Facts(language="en"),
                history=CustomerHistory(
                    window_days=30,
                    recent_messages=0,
                    recent_complaints=0,
                    recent_negative=0,
                    repeat_complainer=False,
                ),
                model_version="bench",
                classified_at=when,
            ),
        )

    def run_day(self, day: int, per_day: int) -> None:
        self.schedule_day(day, per_day)
        end = T0 + (day + 1) * DAY
        while self.pending and self.pending[0][0] <= end:
            when, _, item = heapq.heappop(self.pending)
            self.tick_until(when)
            self.now = when
            self.handle(item, when)
        self.tick_until(end)
        self.now = end


def rss_mb() -> float:
    """Resident memory of this process now (Linux), in MB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def deep_mb(*roots: Any) -> float:
    """Bytes of the objects reachable from ``roots`` (classes, modules and functions, which
    the engine shares with everything, left out), in MB."""
    skip = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)
    seen: set[int] = set()
    stack = list(roots)
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total / 1e6


def case_state(engine: Engine) -> tuple[Any, ...]:
    """What the engine holds because of cases (the roster and settings left out)."""
    return tuple(
        getattr(engine, name)
        for name in (
            "records",
            "archive",
            "by_thread",
            "by_event",
            "open_by_customer",
            "queues",
            "_clocks",
            "_settling",
            "_stale",
            "_due",
        )
        if hasattr(engine, name)
    )


def idle_tick_ms(engine: Engine, now: datetime, runs: int) -> float:
    """Median cost of a tick with nothing due."""
    due = engine.next_due()
    assert due is None or due > now, "something is due: not an idle tick"
    costs = []
    tick = Tick(at=now)
    for _ in range(runs):
        started = time.perf_counter()
        out = engine.apply(tick, now)
        costs.append(time.perf_counter() - started)
        assert not out.events
    return statistics.median(costs) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=60)
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[1, 7, 30])
    parser.add_argument("--tick-runs", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    engine = Engine(roster(args.agents, rng), load_sla_file(None), EngineSettings())
    # Replies to resolved cases go to threads of about the last week (some past the window).
    sim = Sim(engine=engine, rng=rng, ring=args.per_day * 6)
    settings = engine.settings
    print(
        f"{args.days} days x {args.per_day} messages, {args.agents} agents; "
        f"reopen window {settings.reopen_window.days}d, retention {settings.retention.days}d, "
        f"recent resolved {getattr(settings, 'recent_resolved', '-')}"
    )
    print(
        f"{'day':>3} {'messages':>9} {'open':>6} {'whole':>6} {'compressed':>10} "
        f"{'blob B':>6} {'by_event':>8} {'table':>7} {'engine MB':>9} {'RSS MB':>7} "
        f"{'idle tick ms':>12} "
        f"{'wall s':>7}"
    )
    started = time.perf_counter()
    cpu_started = time.process_time()
    figures: dict[int, tuple[float, float, float]] = {}
    for day in range(args.days):
        sim.run_day(day, args.per_day)
        if day + 1 not in args.checkpoints:
            continue
        gc.collect()
        kept = set(engine.kept()) if hasattr(engine, "kept") else set(engine.records)
        assert sim.table == kept, "the table and the engine disagree"
        engine_mb = deep_mb(*case_state(engine))
        rss = rss_mb()
        tick = idle_tick_ms(engine, sim.now, args.tick_runs)
        open_cases = sum(1 for r in engine.records.values() if r.case.is_open)
        archive = getattr(engine, "archive", {})
        blob = sum(len(a.blob) for a in archive.values()) / len(archive) if archive else 0
        figures[day + 1] = (rss, engine_mb, tick)
        print(
            f"{day + 1:>3} {sim.messages:>9} {open_cases:>6} {len(engine.records):>6} "
            f"{len(archive):>10} {blob:>6.0f} {len(engine.by_event):>8} "
            f"{len(sim.table):>7} {engine_mb:>9.1f} {rss:>7.0f} {tick:>12.3f} "
            f"{time.perf_counter() - started:>7.0f}",
            flush=True,
        )
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    print(
        f"applied {sim.applied} inbox messages ({sim.ticks} ticks) in {wall:.0f}s "
        f"({cpu:.0f}s of CPU)"
    )
    print("events: " + ", ".join(f"{k} {v}" for k, v in sorted(sim.kinds.items())))
    if 7 in figures and args.days in figures:
        mid, end = figures[7], figures[args.days]
        print(
            f"engine memory day7={mid[1]:.1f}MB day{args.days}={end[1]:.1f}MB "
            f"(x{end[1] / mid[1]:.2f}); RSS x{end[0] / mid[0]:.2f}; idle tick x"
            f"{end[2] / mid[2]:.2f}"
        )
        print(
            f"memory day7={mid[0]:.0f} day{args.days}={end[0]:.0f} "
            f"tick day7={mid[2]:.3f} day{args.days}={end[2]:.3f}"
        )


if __name__ == "__main__":
    main()
