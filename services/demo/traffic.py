"""What the simulated contact centre says and does: pure builders of customer messages and of
agents' next moves, so they are tested without a running stack."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CORPUS_DIR = Path(__file__).parents[1] / "classifier" / "corpus"
CHANNEL_WEIGHTS = {"email": 0.4, "chat": 0.3, "social": 0.2, "web": 0.1}
NETWORKS = ("x", "facebook", "instagram", "trustpilot")


@dataclass(frozen=True)
class Sample:
    """A labelled text of the project's corpus, used as what a customer writes."""

    text: str
    channel: str | None
    category: str | None
    difficult: str | None


def load_samples(directory: Path = CORPUS_DIR) -> list[Sample]:
    """Every corpus text (the demo needs no data outside the project)."""
    samples = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            samples.append(
                Sample(
                    text=item["text"],
                    channel=item.get("channel"),
                    category=item.get("label_category"),
                    difficult=item.get("label_difficult"),
                )
            )
    return samples


@dataclass
class Customer:
    """A simulated customer and the messages they sent (for replies)."""

    id: str
    tier: str
    language: str
    handle: str
    followers: int
    sent_email_ids: list[str] = field(default_factory=list)


def make_customers(count: int, rng: random.Random) -> list[Customer]:
    """A customer base: mostly standard, some premium and VIP, a few with big audiences."""
    customers = []
    for n in range(count):
        roll = rng.random()
        tier = "vip" if roll < 0.05 else "premium" if roll < 0.2 else "standard"
        followers = int(10 ** rng.uniform(1.5, 5.5)) if rng.random() < 0.5 else 50
        customers.append(
            Customer(
                id=f"demo-{n:04d}",
                tier=tier,
                language="en",
                handle=f"@customer{n}",
                followers=followers,
            )
        )
    return customers


def pick_channel(rng: random.Random) -> str:
    """A channel, by the demo's mix."""
    return rng.choices(list(CHANNEL_WEIGHTS), weights=list(CHANNEL_WEIGHTS.values()))[0]


def message(
    serial: int,
    customer: Customer,
    samples: list[Sample],
    rng: random.Random,
    *,
    run_id: str,
    channel: str | None = None,
) -> dict[str, Any]:
    """One canonical ingest event from a customer: an e-mail (sometimes a reply in an earlier
    thread), a chat, a public or private social post with its reach, or a web form (on
    ``channel``, else on one drawn by the demo's mix)."""
    channel = channel or pick_channel(rng)
    fitting = [s for s in samples if s.channel in (channel, None)] or samples
    sample = rng.choice(fitting)
    body: dict[str, Any] = {
        "id": f"{run_id}-{serial}",
        "channel": channel,
        "customer": {"id": customer.id, "tier": customer.tier, "language": customer.language},
        "text": sample.text,
    }
    if channel == "email":
        message_id = f"<{run_id}.{serial}@mail.example>"
        thread: dict[str, Any] = {"message_id": message_id}
        if customer.sent_email_ids and rng.random() < 0.3:
            thread["in_reply_to"] = customer.sent_email_ids[-1]
            thread["references"] = customer.sent_email_ids[-3:]
            body["subject"] = "Re: my complaint"
        else:
            body["subject"] = (sample.category or "feedback").replace("_", " ").capitalize()
        customer.sent_email_ids.append(message_id)
        body["thread"] = thread
    elif channel == "chat":
        body["thread"] = {"conversation_id": f"{run_id}-chat-{serial}"}
    elif channel == "social":
        public = rng.random() < 0.7
        reach = int(customer.followers * rng.uniform(0.5, 3)) if public else None
        body["social"] = {
            "network": rng.choice(NETWORKS),
            "handle": customer.handle,
            "public": public,
            "followers": customer.followers,
            "reach": reach,
            "kind": "post" if public else "direct_message",
        }
    return body


def burst_factor(elapsed_s: float, *, period_s: float = 90.0, length_s: float = 12.0) -> float:
    """Arrivals come in bursts: three times the rate for a few seconds every period."""
    return 3.0 if (elapsed_s % period_s) < length_s else 1.0


def next_arrival(rate: float, factor: float, rng: random.Random) -> float:
    """Seconds to the next message of a Poisson stream."""
    return -math.log(1.0 - rng.random()) / max(rate * factor, 1e-6)


@dataclass(frozen=True)
class Behaviour:
    """How a simulated agent works, by tier."""

    accept: float  # chance to accept an offer (else decline or let it lapse)
    lapse: float  # of the others, chance to let the offer lapse instead of declining
    think_s: tuple[float, float]  # before accepting
    respond_s: tuple[float, float]  # accepted to first reply
    resolve_s: tuple[float, float]  # reply to resolution
    wait: float  # chance to put the case on hold for the customer
    escalate: float  # chance to escalate instead of resolving
    away_per_min: float  # chance a minute to step away for a while


BEHAVIOURS = {
    "frontline": Behaviour(0.85, 0.4, (1, 6), (3, 20), (8, 40), 0.2, 0.06, 0.08),
    "senior": Behaviour(0.92, 0.3, (1, 4), (2, 12), (6, 30), 0.15, 0.03, 0.05),
    "supervisor": Behaviour(0.95, 0.5, (1, 3), (2, 10), (5, 20), 0.1, 0.0, 0.03),
}


@dataclass
class Plan:
    """What an agent will do next with one case, and when."""

    action: str
    at: float


def plan_for_offer(behaviour: Behaviour, now: float, rng: random.Random) -> Plan:
    """Accept, decline or let lapse, after thinking."""
    delay = rng.uniform(*behaviour.think_s)
    if rng.random() < behaviour.accept:
        return Plan("accept", now + delay)
    if rng.random() < behaviour.lapse:
        return Plan("lapse", now + delay)
    return Plan("decline", now + delay)


def plan_after(
    action: str, behaviour: Behaviour, now: float, rng: random.Random, *, responded: bool
) -> Plan:
    """The next step after ``action`` on an assigned case."""
    if action == "accept":
        return Plan("respond", now + rng.uniform(*behaviour.respond_s))
    if action in ("respond", "resume"):
        roll = rng.random()
        if roll < behaviour.wait and action == "respond":
            return Plan("wait", now + rng.uniform(1, 5))
        if roll < behaviour.wait + behaviour.escalate:
            return Plan("escalate", now + rng.uniform(2, 8))
        return Plan("resolve", now + rng.uniform(*behaviour.resolve_s))
    if action == "wait":
        return Plan("resume", now + rng.uniform(10, 25))
    return Plan("respond" if not responded else "resolve", now + rng.uniform(3, 10))
