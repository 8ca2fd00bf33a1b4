"""Queue order by breach risk against the old order by priority score, on one bursty day.

One working day of arrivals (e-mail, chat and social; every category; standard, premium and
VIP customers; some hostile, some public posts) whose rate rises above the floor's capacity
over lunch, replayed twice through the router's pure engine on a simulated clock
(``services/router/simulation.py``), with the same roster, the same service levels (the shipped
``services/router/config/sla.yaml``, breaches escalating as it says) and the same handling
time for each case (drawn per category; every agent takes a ten-minute break every two hours):
once with ``queue_order=score`` (priority score plus aging, the old order) and once with
``queue_order=risk``. It prints, for each order, the
first-response and resolution attainment per channel and priority, the breaches (first
response, next response and resolution deadlines missed), and ends with

    breaches old=<n> new=<n> ratio=<new/old>

The goal: ratio at most 0.75, with P1 attainment not lower.

    .venv/bin/python bench/sla_policy.py [--seed 1] [--per-hour 120] [--peak 2.6]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from services.common.cases import Case, Priority, SlaMetricName
from services.common.messages import (
    Category,
    Channel,
    Customer,
    CustomerHistory,
    CustomerTier,
    Facts,
    FeedbackClassified,
    FeedbackReceived,
    Money,
    SocialDetails,
    SocialKind,
    Source,
    Tag,
    Thread,
    event_id_for,
)
from services.router.app import load_sla_file
from services.router.engine import EngineSettings
from services.router.roster import Roster, parse_roster
from services.router.routing import QueueOrder
from services.router.simulation import Arrival, HandlingModel, SimulationResult, simulate

DAY = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday
OPEN_H, CLOSE_H = 8.0, 18.0
PEAK = (11.75, 14.25)  # lunchtime: customers write in their break
CHANNELS = {Channel.EMAIL: 0.45, Channel.CHAT: 0.35, Channel.SOCIAL: 0.20}
CATEGORIES = {
    Category.DELAY: 0.22,
    Category.BILLING: 0.16,
    Category.PRODUCT_FAULT: 0.14,
    Category.BROKEN_PROMISE: 0.08,
    Category.COMMUNICATION: 0.08,
    Category.POLICY: 0.06,
    Category.ACCESS_INCONVENIENCE: 0.05,
    Category.STAFF_CONDUCT: 0.06,
    Category.TRUST_PRIVACY: 0.05,
    Category.SUGGESTION: 0.05,
    Category.PRAISE: 0.05,
}
TIERS = {CustomerTier.STANDARD: 0.75, CustomerTier.PREMIUM: 0.18, CustomerTier.VIP: 0.07}
DIFFICULT = {"none": 0.74, "demanding": 0.09, "stubborn": 0.04, "angry": 0.10, "abusive": 0.03}
# Median minutes of work per category (lognormal around it, sigma 0.5).
HANDLING_MIN = {
    Category.DELAY: 7,
    Category.BILLING: 12,
    Category.PRODUCT_FAULT: 14,
    Category.BROKEN_PROMISE: 10,
    Category.COMMUNICATION: 8,
    Category.POLICY: 10,
    Category.ACCESS_INCONVENIENCE: 8,
    Category.STAFF_CONDUCT: 15,
    Category.TRUST_PRIVACY: 20,
    Category.SUGGESTION: 4,
    Category.PRAISE: 2,
}
CARE = [c.value for c in Category if c not in (Category.TRUST_PRIVACY, Category.STAFF_CONDUCT)]
TRUST = [Category.TRUST_PRIVACY.value, Category.STAFF_CONDUCT.value]
AUTHORITY = {
    "refund": 500,
    "fee_waiver": 200,
    "voucher": 100,
    "replacement": 500,
    "goodwill_credit": 200,
}


def pick(rng: random.Random, weights: dict[Any, float]) -> Any:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def rate_at(hour: float, per_hour: float, peak: float) -> float:
    """Arrivals per hour at ``hour``: a morning rise, the lunchtime peak, an afternoon level."""
    if hour < OPEN_H or hour >= CLOSE_H:
        return 0.0
    if PEAK[0] <= hour < PEAK[1]:
        return per_hour * peak
    return per_hour * (0.8 if hour < 10 else 1.0)


def arrival_times(rng: random.Random, per_hour: float, peak: float) -> list[datetime]:
    """A Poisson process with the rate of :func:`rate_at` (by thinning)."""
    top = per_hour * max(peak, 1.0)
    times: list[datetime] = []
    t = OPEN_H
    while True:
        t += rng.expovariate(top)
        if t >= CLOSE_H:
            return times
        if rng.random() * top < rate_at(t, per_hour, peak):
            times.append(DAY + timedelta(hours=t))


def feedback(n: int, at: datetime, rng: random.Random) -> FeedbackClassified:
    channel = pick(rng, CHANNELS)
    category = pick(rng, CATEGORIES)
    tier = pick(rng, TIERS)
    difficult = pick(rng, DIFFICULT)
    positive = category == Category.PRAISE
    score = rng.uniform(0.3, 0.9) if positive else -rng.betavariate(2.5, 1.5)
    social = None
    if channel == Channel.SOCIAL:
        public = rng.random() < 0.6
        social = SocialDetails(
            network="x",
            kind=SocialKind.POST if public else SocialKind.DIRECT_MESSAGE,
            handle=f"@c{n}",
            public=public,
            reach=int(10 ** rng.uniform(1.5, 5.5)) if public else None,
        )
    amounts: tuple[Money, ...] = ()
    if category in (Category.BILLING, Category.PRODUCT_FAULT) and rng.random() < 0.5:
        amount = round(10 ** rng.uniform(1, 2.6), 2)
        amounts = (Money(amount=amount, currency="EUR", text=f"€{amount}"),)
    source = f"policy-{n}"
    received = FeedbackReceived(
        event_id=event_id_for("bench", source),
        source=Source(platform="bench", event_id=source),
        channel=channel,
        customer=Customer(id=f"c-{n}", tier=tier),  # one message per customer: no threading
        subject="My order" if channel == Channel.EMAIL else None,
        text="My order is late again and nobody answers.",
        thread=Thread(conversation_id=None if channel == Channel.EMAIL else f"conv-{n}"),
        received_at=at,
        social=social,
    )
    repeat = rng.random() < 0.08
    return FeedbackClassified(
        event_id=received.event_id,
        feedback=received,
        sentiment=Tag(label="positive" if positive else "negative", probability=0.9),
        sentiment_score=score,
        category=Tag(label=category.value, probability=0.9),
        difficult=Tag(label=difficult, probability=0.9),
        needs_review=False,
        facts=Facts(amounts=amounts, language="en"),
        history=CustomerHistory(
            window_days=30,
            recent_messages=3 if repeat else 0,
            recent_complaints=3 if repeat else 0,
            recent_negative=0,
            repeat_complainer=repeat,
        ),
        model_version="bench",
        classified_at=at,
    )


def trace(seed: int, per_hour: float, peak: float) -> list[Arrival]:
    rng = random.Random(seed)
    return [
        Arrival(at=at, feedback=feedback(n, at, rng))
        for n, at in enumerate(arrival_times(rng, per_hour, peak))
    ]


def roster(care: int, trust: int) -> Roster:
    """Two teams on one calendar; frontline agents with a few skills each, seniors and a
    supervisor per team with all of them."""
    agents: list[dict[str, Any]] = []

    def add(team: str, categories: list[str], n: int, tier: str, k: int) -> None:
        skills = {c: 2 + (n + i) % 4 for i, c in enumerate(categories)}
        if tier == "frontline" and len(categories) > 3:
            # Each frontline agent is skilled in most categories, not all.
            skills = {c: p for i, (c, p) in enumerate(skills.items()) if (i + n) % 4 != 0}
        agents.append(
            {
                "id": f"{team}-{tier}-{k}",
                "name": f"{team} {tier} {k}",
                "team": team,
                "tier": tier,
                "skills": skills,
                "languages": ["en"],
                "channels": {"email": 2, "chat": 2, "social": 2},
                "authority": AUTHORITY if tier == "frontline" else {**AUTHORITY, "refund": 2000},
                "hostile": tier != "frontline" or n % 3 != 0,
                "presence": "available",
            }
        )

    n = 0
    for team, categories, size in (("care", CARE, care), ("trust", TRUST, trust)):
        seniors = max(1, size // 3)
        for k in range(size):
            add(team, categories, n, "frontline", k)
            n += 1
        for k in range(seniors):
            add(team, categories, n, "senior", k)
            n += 1
        add(team, categories, n, "supervisor", 0)
        n += 1
    return parse_roster(
        {
            "default_team": "care",
            "teams": [
                {"id": "care", "name": "Care", "categories": CARE},
                {"id": "trust", "name": "Trust", "categories": TRUST},
            ],
            "agents": agents,
        }
    )


def metric_of(case: Case, metric: SlaMetricName) -> bool | None:
    """True: met; False: breached; None: not applicable or still running within target."""
    for deadline in case.deadlines:
        if deadline.metric == metric:
            if deadline.breached:
                return False
            if deadline.met is not None:
                return deadline.met
    return None


BREACH_METRICS = (
    SlaMetricName.FIRST_RESPONSE,
    SlaMetricName.NEXT_RESPONSE,
    SlaMetricName.RESOLUTION,
)


def breaches(cases: Iterable[Case]) -> int:
    return sum(
        1
        for case in cases
        for deadline in case.deadlines
        if deadline.metric in BREACH_METRICS and deadline.breached
    )


def attainment(cases: Iterable[Case], metric: SlaMetricName) -> tuple[int, int]:
    """(met, decided) for ``metric``."""
    outcomes = [m for case in cases if (m := metric_of(case, metric)) is not None]
    return sum(outcomes), len(outcomes)


def share(met: int, decided: int) -> str:
    return f"{100 * met / decided:5.1f}%" if decided else "    -"


def report(name: str, result: SimulationResult, wall: float) -> None:
    cases = result.cases
    groups: dict[tuple[Channel, Priority], list[Case]] = defaultdict(list)
    for case in cases:
        groups[(case.channel, case.base_priority)].append(case)
    waits = sorted(
        ((c.assigned_at - c.created_at).total_seconds() for c in cases if c.assigned_at),
    )
    p90 = waits[int(0.9 * (len(waits) - 1))] if waits else 0.0
    deepest = max((sum(depth.values()) for _, depth in result.queue_depth), default=0)
    unresolved = sum(1 for c in cases if c.resolved_at is None)
    print(
        f"\n{name}: {len(cases)} cases, {len(result.assignments)} assignments, "
        f"{result.events.get('escalated', 0)} escalations, deepest queue {deepest}, "
        f"first-assignment wait p90 {p90 / 60:.1f} min, {unresolved} unresolved at the end, "
        f"{wall:.1f}s"
    )
    print(f"  {'channel':<7} {'prio':<4} {'cases':>5} {'first response':>15} {'resolution':>11}")
    for (channel, priority), group in sorted(groups.items()):
        first = attainment(group, SlaMetricName.FIRST_RESPONSE)
        resolution = attainment(group, SlaMetricName.RESOLUTION)
        print(
            f"  {channel.value:<7} {priority.value:<4} {len(group):>5} "
            f"{share(*first):>15} {share(*resolution):>11}"
        )
    counts = Counter(
        deadline.metric.value
        for case in cases
        for deadline in case.deadlines
        if deadline.metric in BREACH_METRICS and deadline.breached
    )
    p1 = [c for c in cases if c.base_priority == Priority.P1]
    print(
        f"  breaches {breaches(cases)} ("
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        + f"); P1 first response {share(*attainment(p1, SlaMetricName.FIRST_RESPONSE))}, "
        f"resolution {share(*attainment(p1, SlaMetricName.RESOLUTION))}"
    )


def run(
    arrivals: list[Arrival], floor: Roster, order: QueueOrder, seed: int
) -> tuple[SimulationResult, float]:
    handling = HandlingModel(
        median_s={c: m * 60.0 for c, m in HANDLING_MIN.items()}, sigma=0.5, seed=seed
    )
    settings = EngineSettings(queue_order=order)
    started = time.perf_counter()
    result = simulate(
        arrivals, floor, load_sla_file(None), settings, handling, breaks=timedelta(hours=2)
    )
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--per-hour", type=float, default=120, help="arrivals/hour off-peak")
    parser.add_argument("--peak", type=float, default=2.6, help="lunchtime rate multiplier")
    parser.add_argument("--care", type=int, default=6, help="frontline agents of care")
    parser.add_argument("--trust", type=int, default=2, help="frontline agents of trust")
    args = parser.parse_args()
    arrivals = trace(args.seed, args.per_hour, args.peak)
    floor = roster(args.care, args.trust)
    by_channel = Counter(a.feedback.feedback.channel.value for a in arrivals)
    peak = sum(1 for a in arrivals if PEAK[0] <= (a.at - DAY).total_seconds() / 3600 < PEAK[1])
    print(
        f"seed {args.seed}: {len(arrivals)} arrivals ("
        + ", ".join(f"{k} {v}" for k, v in sorted(by_channel.items()))
        + f"), {peak} over lunch {PEAK[0]:g}-{PEAK[1]:g}h; {len(floor.agents)} agents"
    )
    old, old_wall = run(arrivals, floor, QueueOrder.SCORE, args.seed)
    report("old order (score)", old, old_wall)
    new, new_wall = run(arrivals, floor, QueueOrder.RISK, args.seed)
    report("new order (risk)", new, new_wall)
    n_old, n_new = breaches(old.cases), breaches(new.cases)
    print(f"breaches old={n_old} new={n_new} ratio={n_new / n_old if n_old else 0:.2f}")


if __name__ == "__main__":
    main()
