"""Runs the simulated contact centre against the running stack: customers post through the
ingest API, agents work their cases through the agent API, and a live summary shows the floor."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from services.demo import incidents
from services.demo.traffic import (
    BEHAVIOURS,
    Plan,
    burst_factor,
    load_samples,
    make_customers,
    message,
    next_arrival,
    plan_after,
    plan_for_offer,
)


@dataclass
class DemoStats:
    """What the simulation did."""

    posted: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    incident: int = 0  # messages of the injected incident posted


@dataclass(frozen=True)
class Endpoints:
    """Where the stack listens and the credentials the demo uses."""

    ingest: str
    router: str
    api_key: str
    tokens: dict[str, str]  # agent id -> token
    tiers: dict[str, str]  # agent id -> tier
    supervisor: str  # a supervisor's token, for the summary


async def customers(
    http: httpx.AsyncClient,
    where: Endpoints,
    *,
    rate: float,
    until: float,
    stats: DemoStats,
    rng: random.Random,
) -> None:
    """Post messages at ``rate`` a second on average, with bursts, until ``until``."""
    samples = load_samples()
    people = make_customers(300, rng)
    run_id = f"demo{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    serial = 0
    headers = {"Authorization": f"Bearer {where.api_key}"}
    while time.monotonic() < until:
        factor = burst_factor(time.monotonic() - started)
        await asyncio.sleep(next_arrival(rate, factor, rng))
        serial += 1
        body = message(serial, rng.choice(people), samples, rng, run_id=run_id)
        try:
            response = await http.post(f"{where.ingest}/v1/feedback", json=body, headers=headers)
        except httpx.HTTPError as exc:
            stats.errors[type(exc).__name__] += 1
            continue
        if response.status_code in (200, 202):
            stats.posted[body["channel"]] += 1
        else:
            stats.rejected += 1


async def incident_burst(
    http: httpx.AsyncClient,
    where: Endpoints,
    plan: incidents.IncidentPlan,
    *,
    rate: float,
    until: float,
    stats: DemoStats,
    rng: random.Random,
) -> None:
    """Post an incident's burst of similar complaints ``plan.after_s`` seconds from now, for
    the trends' surge and emerging cluster to find (sized to the customers' ``rate``)."""
    run_id = f"incident{uuid.uuid4().hex[:6]}"
    started = time.monotonic() + plan.after_s
    headers = {"Authorization": f"Bearer {where.api_key}"}
    for offset, body in incidents.burst(plan, rate, rng, run_id=run_id):
        delay = started + offset - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if time.monotonic() >= until:
            return
        try:
            response = await http.post(f"{where.ingest}/v1/feedback", json=body, headers=headers)
        except httpx.HTTPError as exc:
            stats.errors[type(exc).__name__] += 1
            continue
        if response.status_code in (200, 202):
            stats.posted[body["channel"]] += 1
            stats.incident += 1
        else:
            stats.rejected += 1


async def agent(
    http: httpx.AsyncClient,
    where: Endpoints,
    agent_id: str,
    *,
    until: float,
    stats: DemoStats,
    rng: random.Random,
) -> None:
    """One simulated agent: takes offers, replies, holds, resolves, escalates, steps away;
    comes back when the router set them away; a supervisor also works the review lane."""
    behaviour = BEHAVIOURS[where.tiers[agent_id]]
    supervisor = where.tiers[agent_id] == "supervisor"
    headers = {"Authorization": f"Bearer {where.tokens[agent_id]}"}
    base = f"{where.router}/v1"
    plans: dict[str, Plan] = {}
    responded: set[str] = set()
    back_at: float | None = None
    await _act(http, f"{base}/me/presence", headers, stats, "available", {"presence": "available"})
    turn = 0
    while time.monotonic() < until:
        await asyncio.sleep(1.0)
        now = time.monotonic()
        turn += 1
        if back_at is None and turn % 5 == 0 and await _set_away_by_router(http, base, headers):
            # Offers lapsed in a row: the router set them away; they notice and come back.
            stats.actions["set away by the router"] += 1
            back_at = now + rng.uniform(10, 30)
        if supervisor and back_at is None and turn % 5 == 0:
            await _review(http, base, headers, stats, rng)
        if back_at is not None:
            if now >= back_at:
                back_at = None
                await _act(
                    http, f"{base}/me/presence", headers, stats, "back", {"presence": "available"}
                )
            continue
        if rng.random() < behaviour.away_per_min / 60:
            back_at = now + rng.uniform(20, 45)
            await _act(http, f"{base}/me/presence", headers, stats, "away", {"presence": "away"})
            plans.clear()
            continue
        try:
            response = await http.get(
                f"{base}/cases", params={"open": "true", "limit": 1000}, headers=headers
            )
        except httpx.HTTPError as exc:
            stats.errors[type(exc).__name__] += 1
            continue
        if response.status_code != 200:
            stats.errors[f"cases {response.status_code}"] += 1
            continue
        # One page: an agent holds far fewer open cases than a page.
        mine = {c["case_id"]: c for c in response.json()["items"]}
        for case_id in list(plans):
            if case_id not in mine:
                del plans[case_id]
        for case_id, case in mine.items():
            offered = case["offer"] is not None and case["offer"]["agent_id"] == agent_id
            if case_id not in plans:
                if offered:
                    plans[case_id] = plan_for_offer(behaviour, now, rng)
                elif case["assignee"] == agent_id:
                    plans[case_id] = plan_after(
                        "accept", behaviour, now, rng, responded=case_id in responded
                    )
                continue
            plan = plans[case_id]
            if plan.at > now or plan.action == "lapse":
                continue
            body: dict[str, Any] = {}
            if plan.action == "respond":
                body = {"chars": rng.randint(200, 1200)}
            elif plan.action in ("decline", "escalate", "wait"):
                body = {"reason": "demo"}
            ok = await _act(
                http, f"{base}/cases/{case_id}/{plan.action}", headers, stats, plan.action, body
            )
            if not ok or plan.action in ("decline", "resolve", "escalate"):
                del plans[case_id]
                continue
            if plan.action == "respond":
                responded.add(case_id)
            plans[case_id] = plan_after(
                plan.action, behaviour, now, rng, responded=case_id in responded
            )


async def _set_away_by_router(http: httpx.AsyncClient, base: str, headers: dict[str, str]) -> bool:
    try:
        response = await http.get(f"{base}/me", headers=headers)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.json().get("away_reason") is not None


async def _review(
    http: httpx.AsyncClient,
    base: str,
    headers: dict[str, str],
    stats: DemoStats,
    rng: random.Random,
) -> None:
    """Review the oldest cases of the review lane waiting 15 s or more: mostly confirm the
    tags, sometimes take the runner-up category."""
    try:
        response = await http.get(f"{base}/review", params={"limit": 5}, headers=headers)
    except httpx.HTTPError as exc:
        stats.errors[type(exc).__name__] += 1
        return
    if response.status_code != 200:
        stats.errors[f"review {response.status_code}"] += 1
        return
    for item in response.json()["items"]:
        if item["waiting_seconds"] < 15:
            break
        body: dict[str, Any] = {}
        category = item["messages"][-1]["category"]
        if category["needs_review"] and category["runner_up"] and rng.random() < 0.3:
            body = {"category": category["runner_up"]}
        url = f"{base}/cases/{item['case_id']}/relabel"
        await _act(http, url, headers, stats, "review", body)


async def _act(
    http: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    stats: DemoStats,
    name: str,
    body: dict[str, Any],
) -> bool:
    try:
        method = "PUT" if url.endswith("/presence") else "POST"
        response = await http.request(method, url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        stats.errors[type(exc).__name__] += 1
        return False
    if response.status_code == 200:
        stats.actions[name] += 1
        return True
    stats.errors[f"{name} {response.status_code}"] += 1
    return False


def router_figures(metrics_text: str) -> dict[str, float]:
    """The router's counters the summary shows, from its /metrics."""
    wanted: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            labels = sample.labels
            key = _figure(sample.name, labels)
            if key == "oldest":
                wanted["oldest"] = max(wanted.get("oldest", 0.0), sample.value)
            elif key is not None:
                wanted[key] = wanted.get(key, 0.0) + sample.value
    return wanted


def _figure(name: str, labels: dict[str, str]) -> str | None:
    if name == "triage_router_offers_total":
        return f"offers_{labels['outcome']}"
    if name == "triage_router_case_events_total":
        return f"events_{labels['type']}"
    if name == "triage_router_sla_breaches_total":
        return "breaches"
    if name == "triage_router_escalations_total":
        return "escalations"
    if name == "triage_router_sla_completed_total":
        return f"sla_completed_{labels['metric']}"
    if name == "triage_router_sla_met_total":
        return f"sla_met_{labels['metric']}"
    if name == "triage_router_queue_depth":
        return "queued"
    if name == "triage_router_queue_oldest_age_seconds":
        return "oldest"
    return None


def _share(met: float, done: float) -> str:
    return f"{met / done:.0%}" if done else "-"


def summary(stats: DemoStats, figures: dict[str, float], tags: Counter[str]) -> Group:
    """The live view: intake, tags, queue, service level, breaches."""
    intake = Table(title="Intake by channel")
    intake.add_column("channel")
    intake.add_column("posted", justify="right")
    for channel, count in sorted(stats.posted.items()):
        intake.add_row(channel, str(count))
    mix = Table(title="Open cases by category / difficult type")
    mix.add_column("tag")
    mix.add_column("cases", justify="right")
    for tag, count in tags.most_common(8):
        mix.add_row(tag, str(count))
    floor = Table(title="Floor")
    floor.add_column("figure")
    floor.add_column("value", justify="right")
    rows = [
        ("cases created", figures.get("events_created", 0)),
        ("offers accepted", figures.get("offers_accepted", 0)),
        (
            "offers declined / lapsed",
            figures.get("offers_declined", 0) + figures.get("offers_timed_out", 0),
        ),
        ("responded", figures.get("events_responded", 0)),
        ("resolved", figures.get("events_resolved", 0)),
        ("waiting in queue", figures.get("queued", 0)),
        ("oldest waiting (s)", round(figures.get("oldest", 0))),
        ("breaches", figures.get("breaches", 0)),
        ("escalations", figures.get("escalations", 0)),
    ]
    for name, value in rows:
        floor.add_row(name, f"{value:g}" if isinstance(value, float) else str(value))
    floor.add_row(
        "first response in target",
        _share(
            figures.get("sla_met_first_response", 0), figures.get("sla_completed_first_response", 0)
        ),
    )
    floor.add_row(
        "resolution in target",
        _share(figures.get("sla_met_resolution", 0), figures.get("sla_completed_resolution", 0)),
    )
    return Group(intake, mix, floor)


async def watch(
    http: httpx.AsyncClient,
    where: Endpoints,
    *,
    until: float,
    stats: DemoStats,
    console: Console,
    live: bool,
) -> dict[str, float]:
    """Refresh the summary every two seconds; return the last router figures."""
    figures: dict[str, float] = {}
    headers = {"Authorization": f"Bearer {where.supervisor}"}

    async def refresh() -> Group:
        nonlocal figures
        tags: Counter[str] = Counter()
        try:
            figures = router_figures((await http.get(f"{where.router}/metrics")).text)
            cases = await http.get(
                f"{where.router}/v1/cases", params={"open": "true", "limit": 1000}, headers=headers
            )
            for case in cases.json()["items"] if cases.status_code == 200 else []:
                tags[case["category"]] += 1
                if case["difficult"] != "none":
                    tags[case["difficult"]] += 1
        except httpx.HTTPError as exc:
            stats.errors[type(exc).__name__] += 1
        return summary(stats, figures, tags)

    if not live:
        while time.monotonic() < until:
            await asyncio.sleep(2)
            await refresh()
        await refresh()
        return figures
    with Live(await refresh(), console=console, refresh_per_second=1) as view:
        while time.monotonic() < until:
            await asyncio.sleep(2)
            view.update(await refresh())
        view.update(await refresh())
    return figures


async def run_demo(
    where: Endpoints,
    *,
    rate: float,
    duration_s: float,
    seed: int | None = None,
    live: bool = True,
    console: Console | None = None,
    incident: incidents.IncidentPlan | None = None,
) -> tuple[DemoStats, dict[str, float]]:
    """Run customers, agents and the summary for ``duration_s`` (with an incident's burst of
    similar complaints when ``incident`` is given); return what happened."""
    rng = random.Random(seed)
    stats = DemoStats()
    console = console or Console()
    until = time.monotonic() + duration_s
    async with httpx.AsyncClient(timeout=15) as http:
        tasks = [
            asyncio.create_task(
                customers(http, where, rate=rate, until=until, stats=stats, rng=rng)
            )
        ]
        if incident is not None:
            tasks.append(
                asyncio.create_task(
                    incident_burst(
                        http,
                        where,
                        incident,
                        rate=rate,
                        until=until,
                        stats=stats,
                        rng=random.Random(rng.random()),
                    )
                )
            )
        for agent_id in where.tokens:
            tasks.append(
                asyncio.create_task(
                    agent(
                        http,
                        where,
                        agent_id,
                        until=until,
                        stats=stats,
                        rng=random.Random(rng.random()),
                    )
                )
            )
        try:
            figures = await watch(
                http, where, until=until + 1, stats=stats, console=console, live=live
            )
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            # Stopped early (Ctrl-C cancels the demo): the customers and agents stop before
            # the client closes, or their next request fails on a closed client in a task
            # nobody awaits ("Task exception was never retrieved").
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return stats, figures
