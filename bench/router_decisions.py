"""Routing decisions/s of the router's engine at 100, 1,000 and 10,000 agents, with deep queues.

Two decisions are timed at each floor size, same code path as the service (``Engine.apply``):

* new case: a classified message arrives, a case is created, scored and offered to the best
  eligible agent (agents have room);
* capacity freed: every agent is full and the queue holds ``--queue`` cases; an agent resolves
  a case and the highest eligible waiting case is offered to them at once.

The reference is the smallest floor in the same run: the cost per decision at each size is
printed with its ratio to the cost at 100 agents (the aim is at most 2x at 10,000).

The team's clocks run on the ``--calendar`` of the shipped service levels: ``always`` (wall
time, the default) or ``emea`` (business hours in Europe/London, so every deadline is worked
out on the calendar).

    .venv/bin/python bench/router_decisions.py [--sizes 100 1000 10000] [--decisions 2000]
        [--calendar always|emea]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services.common.cases import CaseState
from services.common.messages import (
    Channel,
    Customer,
    CustomerHistory,
    Facts,
    FeedbackClassified,
    FeedbackReceived,
    Money,
    Source,
    Tag,
    event_id_for,
)
from services.router.app import load_sla_file
from services.router.commands import Accept, ClassifiedIn, Resolve
from services.router.engine import Engine, EngineSettings
from services.router.roster import parse_roster

CATEGORIES = ["delay", "billing", "product_fault", "broken_promise", "communication"]
LANGUAGES = ["en", "en", "en", "fr", "de", "es"]
CHANNELS = [Channel.EMAIL, Channel.CHAT, Channel.SOCIAL]
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def floor(agents: int, seed: int, calendar: str = "always") -> Engine:
    rng = random.Random(seed)
    profiles = []
    for n in range(agents):
        tier = "frontline" if n % 10 < 8 else "senior" if n % 10 < 9 else "supervisor"
        skills = {c: rng.randint(1, 5) for c in rng.sample(CATEGORIES, k=rng.randint(2, 5))}
        profiles.append(
            {
                "id": f"agent-{n}",
                "name": f"Agent {n}",
                "team": "care",
                "tier": tier,
                "skills": skills,
                "languages": sorted({"en", rng.choice(LANGUAGES)}),
                "channels": {ch.value: rng.randint(1, 3) for ch in CHANNELS},
                "authority": {
                    "refund": rng.choice([50, 100, 250]) * (1 + 4 * (tier != "frontline")),
                    "goodwill_credit": 50,
                    "replacement": 200,
                    "voucher": 25,
                },
                "hostile": rng.random() < 0.5,
                "presence": "available",
            }
        )
    roster = parse_roster(
        {
            "default_team": "care",
            "teams": [
                {"id": "care", "name": "Care", "categories": CATEGORIES, "calendar": calendar}
            ],
            "agents": profiles,
        }
    )
    return Engine(roster, load_sla_file(None), EngineSettings())


def message(n: int, rng: random.Random, at: datetime) -> ClassifiedIn:
    source = f"bench-{n}-{uuid.uuid4().hex[:8]}"
    received = FeedbackReceived(
        event_id=event_id_for("bench", source),
        source=Source(platform="bench", event_id=source),
        channel=rng.choice(CHANNELS),
        customer=Customer(id=f"c-{n}"),
        text="My order is late and nobody answers.",
        received_at=at,
    )
    amount = rng.choice([None, 20.0, 80.0, 300.0])
    return ClassifiedIn(
        at=at,
        feedback=FeedbackClassified(
            event_id=received.event_id,
            feedback=received,
            sentiment=Tag(label="negative", probability=0.8),
            sentiment_score=-rng.random(),
            category=Tag(label=rng.choice(CATEGORIES), probability=0.8),
            difficult=Tag(label=rng.choice(["none", "none", "angry", "quiet"]), probability=0.7),
            needs_review=False,
            facts=Facts(
                amounts=(Money(amount=amount, currency="EUR", text="x"),) if amount else (),
                language=rng.choice(LANGUAGES),
            ),
            history=CustomerHistory(
                window_days=30,
                recent_messages=0,
                recent_complaints=0,
                recent_negative=0,
                repeat_complainer=False,
            ),
            model_version="bench",
            classified_at=at,
        ),
    )


def accept_all(engine: Engine, at: datetime) -> None:
    for record in list(engine.records.values()):
        case = record.case
        if case.state == CaseState.OFFERED and case.offer is not None:
            accept(engine, case.offer.agent_id, case.case_id, at)


def accept(engine: Engine, agent_id: str, case_id: uuid.UUID, at: datetime) -> None:
    """The agent accepts the case offered to them."""
    engine.apply(Accept(command_id=uuid.uuid4(), actor=agent_id, at=at, case_id=case_id), at)


def bench_new_cases(agents: int, decisions: int, seed: int, calendar: str) -> dict[str, Any]:
    """Cost of routing a new case; the offered case is then worked off (untimed), so every
    decision meets the same floor: busy but with room."""
    engine = floor(agents, seed, calendar)
    rng = random.Random(seed)
    inputs = [message(n, rng, T0) for n in range(decisions)]
    offered = 0
    elapsed = 0.0
    gc.collect()
    for n, item in enumerate(inputs):
        at = T0 + timedelta(milliseconds=n)
        started = time.perf_counter()
        out = engine.apply(item, at)
        elapsed += time.perf_counter() - started
        case = out.events[-1].case
        if case.offer is not None:
            offered += 1
            accept(engine, case.offer.agent_id, case.case_id, at)
            engine.apply(
                Resolve(
                    command_id=uuid.uuid4(),
                    actor=case.assignee or "",
                    at=at,
                    case_id=case.case_id,
                ),
                at,
            )
    return {"us": elapsed / decisions * 1e6, "offered": offered / decisions}


def bench_capacity_freed(
    agents: int, queue: int, decisions: int, seed: int, calendar: str
) -> dict[str, Any]:
    """Cost of taking the highest eligible waiting case when an agent frees capacity."""
    engine = floor(agents, seed, calendar)
    rng = random.Random(seed + 1)
    now = T0
    # Fill the floor until the queue is as deep as asked, then accept every offer.
    n = 0
    while len(engine.queues["care"]) < queue:
        engine.apply(message(n, rng, now), now)
        n += 1
    accept_all(engine, now)
    held = [
        (agent.id, case_id)
        for agent in engine.agents.values()
        for case_id in agent.holding
        if engine.records[case_id].case.state == CaseState.ASSIGNED
    ]
    rng.shuffle(held)
    held = held[:decisions]
    gc.collect()
    drained = 0
    started = time.perf_counter()
    for i, (agent_id, case_id) in enumerate(held):
        at = now + timedelta(seconds=1 + i)
        out = engine.apply(
            Resolve(command_id=uuid.uuid4(), actor=agent_id, at=at, case_id=case_id),
            at,
        )
        drained += sum(1 for e in out.events if e.type == "offered")
    elapsed = time.perf_counter() - started
    return {
        "us": elapsed / max(1, len(held)) * 1e6,
        "offered": drained / max(1, len(held)),
        "queue": len(engine.queues["care"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--queue", type=int, default=5000, help="Waiting cases when all are full.")
    parser.add_argument("--repeat", type=int, default=3, help="Runs per size (median reported).")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--calendar",
        choices=["always", "emea"],
        default="always",
        help="The calendar of the team's clocks (shipped service levels).",
    )
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        new = [
            bench_new_cases(size, args.decisions, args.seed + r, args.calendar)
            for r in range(args.repeat)
        ]
        freed = [
            bench_capacity_freed(size, args.queue, args.decisions, args.seed + r, args.calendar)
            for r in range(args.repeat)
        ]
        rows.append(
            (
                size,
                statistics.median(r["us"] for r in new),
                statistics.median(r["offered"] for r in new),
                statistics.median(r["us"] for r in freed),
                statistics.median(r["offered"] for r in freed),
                freed[0]["queue"],
            )
        )
    base_new, base_freed = rows[0][1], rows[0][3]
    print(
        f"routing decisions, median of {args.repeat} runs of {args.decisions} decisions,"
        f" calendar {args.calendar}"
    )
    print(
        f"{'agents':>7} | {'new case µs':>11} {'/s':>7} {'x ref':>6} {'offered':>7} | "
        f"{'freed µs':>9} {'/s':>7} {'x ref':>6} {'offered':>7} {'queue':>6}"
    )
    for size, new_us, new_ok, freed_us, freed_ok, queue in rows:
        print(
            f"{size:>7} | {new_us:>11.0f} {1e6 / new_us:>7.0f} {new_us / base_new:>6.2f} "
            f"{new_ok:>7.0%} | {freed_us:>9.0f} {1e6 / freed_us:>7.0f} "
            f"{freed_us / base_freed:>6.2f} {freed_ok:>7.0%} {queue:>6}"
        )


if __name__ == "__main__":
    main()
