"""The simulated contact centre: what customers send, how agents behave, and a bounded demo run
of the whole stack on the embedded broker."""

from __future__ import annotations

import asyncio
import gc
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from services.common.broker import free_port
from services.demo.incidents import IncidentPlan
from services.demo.runner import Endpoints, run_demo
from services.demo.traffic import (
    BEHAVIOURS,
    burst_factor,
    load_samples,
    make_customers,
    message,
    next_arrival,
    plan_after,
    plan_for_offer,
)
from services.ingest.models import FeedbackIn
from services.stack import SERVICES

ROOT = Path(__file__).parents[2]


def test_messages_are_valid_ingest_events_across_channels_with_threads_and_reach() -> None:
    rng = random.Random(3)
    samples = load_samples()
    assert len(samples) > 1000
    people = make_customers(20, rng)
    bodies = [message(n, rng.choice(people), samples, rng, run_id="t") for n in range(400)]
    for body in bodies:
        FeedbackIn.model_validate(body)  # raises on anything ingest would refuse
    channels = Counter(body["channel"] for body in bodies)
    assert set(channels) == {"email", "chat", "social", "web"}
    replies = [b for b in bodies if b["channel"] == "email" and "in_reply_to" in b["thread"]]
    assert replies, "some e-mails answer an earlier one of the same customer"
    public = [b for b in bodies if b["channel"] == "social" and b["social"]["public"]]
    assert public
    assert all(b["social"]["reach"] > 0 for b in public)
    assert len({body["id"] for body in bodies}) == len(bodies)
    tiers = Counter(p.tier for p in make_customers(1000, rng))
    assert tiers["standard"] > tiers["premium"] > tiers["vip"] > 0


def test_arrivals_come_in_bursts_at_the_asked_rate() -> None:
    rng = random.Random(5)
    gaps = [next_arrival(4.0, 1.0, rng) for _ in range(20_000)]
    assert 0.23 < sum(gaps) / len(gaps) < 0.27
    assert burst_factor(5.0) == 3.0
    assert burst_factor(50.0) == 1.0


def test_agents_accept_most_offers_and_move_cases_forward() -> None:
    rng = random.Random(7)
    behaviour = BEHAVIOURS["frontline"]
    decisions = Counter(plan_for_offer(behaviour, 0.0, rng).action for _ in range(5000))
    assert decisions["accept"] / 5000 == pytest.approx(behaviour.accept, abs=0.03)
    assert decisions["decline"] > 0
    assert decisions["lapse"] > 0
    assert plan_after("accept", behaviour, 0.0, rng, responded=False).action == "respond"
    after_reply = Counter(
        plan_after("respond", behaviour, 0.0, rng, responded=True).action for _ in range(5000)
    )
    assert set(after_reply) == {"wait", "escalate", "resolve"}
    assert plan_after("wait", behaviour, 0.0, rng, responded=True).action == "resume"


async def test_a_stopped_demo_stops_its_customers_and_agents_first() -> None:
    """Ctrl-C cancels the demo: its customers, agents and incident stop before its HTTP client
    closes, so none of them fails later on the closed client in a task nobody awaits ("Task
    exception was never retrieved")."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    base = f"http://127.0.0.1:{free_port()}"  # nothing listens: every request fails at once
    where = Endpoints(
        ingest=base,
        router=base,
        api_key="key",
        tokens={"a1": "token-a1", "s1": "token-s1"},
        tiers={"a1": "frontline", "s1": "supervisor"},
        supervisor="token-s1",
    )
    before = asyncio.all_tasks()
    plan = IncidentPlan(after_s=0.5, duration_s=30)
    demo = asyncio.create_task(
        run_demo(where, rate=5, duration_s=60, seed=1, live=False, incident=plan)
    )
    await asyncio.sleep(2.5)  # customers posting, agents a turn or two in, the incident on
    demo.cancel()
    with pytest.raises(asyncio.CancelledError):
        await demo
    assert asyncio.all_tasks() - before == set()  # nothing of the demo still runs
    await asyncio.sleep(1.5)  # past the agents' next turn
    gc.collect()  # an unretrieved task exception is reported when its task is collected
    assert reported == []
    loop.set_exception_handler(None)


@pytest.mark.timeout(300)
def test_up_demo_runs_the_floor_for_a_bounded_time_and_stops(tmp_path: Path) -> None:
    names = ("broker", *(spec.name for spec in SERVICES))
    argv = [arg for name in names for arg in (f"--{name}-port", str(free_port()))]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "up",
            *argv,
            "--demo",
            "--duration",
            "60",
            "--rate",
            "3",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "TRIAGE_CLASSIFIER_DATA_DIR": str(tmp_path / "classifier"),
            "TRIAGE_ROUTER_DATA_DIR": str(tmp_path / "router"),
        },
        capture_output=True,
        timeout=280,
    )
    out = result.stdout.decode()
    assert result.returncode == 0, out[-3000:] + result.stderr.decode()[-3000:]
    line = re.search(
        r"demo finished: posted (\d+) messages; router: created (\d+), assigned (\d+), "
        r"responded (\d+), resolved (\d+), breaches (\d+), escalations (\d+)",
        out,
    )
    assert line, out[-3000:]
    posted, created, assigned, responded, resolved, breaches, escalations = map(int, line.groups())
    assert posted > 60
    assert created > 30
    assert assigned > 10
    assert responded > 5
    assert resolved > 3
    assert breaches + escalations > 0
    assert "stopped" in out
