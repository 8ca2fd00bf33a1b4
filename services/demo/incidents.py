"""Incidents for the demo and the trends benchmark: bursts of similar complaints (an outage, a
failed delivery round, a double charge), each written many ways as real customers would.

Pure builders: an ``Incident`` is a set of phrasings and the channels customers use for it;
``texts`` draws distinct messages from it and ``arrivals`` spreads them over the incident.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import Any

from services.demo.traffic import Customer, Sample, make_customers, message


@dataclass(frozen=True)
class Incident:
    """One kind of incident: how customers describe it, and where they write."""

    name: str
    openings: tuple[str, ...]
    details: tuple[str, ...]
    endings: tuple[str, ...]
    channels: dict[str, float]


OUTAGE = Incident(
    name="login_outage",
    openings=(
        "I can't log in to the app",
        "The app won't let me sign in",
        "Your app keeps failing when I try to log in",
        "Login is broken on the app",
        "I have tried to sign in to my account five times",
        "Is the app down? I cannot get into my account",
        "The mobile app will not log me in",
    ),
    details=(
        "it just shows error 503",
        "it says service unavailable, error 503",
        "I get error 503 every time",
        "the screen freezes and then says error 503",
        "it spins and then fails with error 503",
    ),
    endings=(
        "since this morning.",
        "for the last hour.",
        "and I need to pay a bill today.",
        "please fix it.",
        "what is going on?",
        "this is the second time this month.",
    ),
    channels={"social": 0.45, "chat": 0.35, "email": 0.15, "web": 0.05},
)

DELIVERY = Incident(
    name="failed_delivery_round",
    openings=(
        "My parcel was marked as delivered",
        "Tracking says my order was delivered",
        "The app says my package was handed over",
        "I got a delivered notification for my parcel",
        "Your courier marked my delivery as complete",
    ),
    details=(
        "but nothing arrived and no driver came",
        "but the driver never showed up",
        "but there is no parcel at my door or with the neighbours",
        "yet I was home all day and nobody knocked",
        "but it is nowhere to be found",
    ),
    endings=(
        "today.",
        "this afternoon.",
        "where is my parcel?",
        "I want to know where it went.",
        "please send it again.",
    ),
    channels={"email": 0.4, "chat": 0.3, "web": 0.2, "social": 0.1},
)

DOUBLE_CHARGE = Incident(
    name="double_charge",
    openings=(
        "You charged my card twice",
        "I have been billed twice",
        "Two identical payments were taken from my account",
        "My bank shows a double payment to you",
        "Your system took the same payment two times",
    ),
    details=(
        "for the same order",
        "for this month's subscription",
        "for one purchase",
        "for a single invoice",
    ),
    endings=(
        "please refund the duplicate.",
        "I want my money back.",
        "this has left me overdrawn.",
        "can you reverse the second charge?",
    ),
    channels={"email": 0.45, "chat": 0.35, "web": 0.15, "social": 0.05},
)

INCIDENTS: dict[str, Incident] = {i.name: i for i in (OUTAGE, DELIVERY, DOUBLE_CHARGE)}


def phrasings(incident: Incident) -> list[str]:
    """Every message the incident's parts make, in a fixed order."""
    return [
        f"{opening}, {detail} {ending}".replace("  ", " ")
        for opening, detail, ending in itertools.product(
            incident.openings, incident.details, incident.endings
        )
    ]


def texts(incident: Incident, count: int, rng: random.Random) -> list[str]:
    """``count`` messages about the incident, distinct as long as there are phrasings left."""
    pool = phrasings(incident)
    rng.shuffle(pool)
    return [pool[n % len(pool)] for n in range(count)]


def channel_of(incident: Incident, rng: random.Random) -> str:
    """Where one customer writes about the incident."""
    return rng.choices(list(incident.channels), weights=list(incident.channels.values()))[0]


def arrivals(count: int, duration_s: float, rng: random.Random) -> list[float]:
    """Seconds from the incident's start of each of ``count`` messages, spread at random over
    ``duration_s`` (independent arrivals), in order."""
    return sorted(rng.uniform(0, duration_s) for _ in range(count))


#: The fewest messages of the demo's incident, however slow the usual traffic.
MIN_INCIDENT_MESSAGES = 60


@dataclass(frozen=True)
class IncidentPlan:
    """When the demo's incident starts and how big it is: messages about ``incident`` spread
    over ``duration_s``, ``after_s`` seconds into the demo; ``count`` of them, or (None) as
    many as ``intensity`` times the customers' usual rate gives over that time.

    The incident is sized to the traffic because a surge is judged against what its series
    usually gets: at the demo's 2 messages a second each category gets about 27 messages in
    the demo's 2-minute surge window, and the classifier splits an outage about evenly between
    two categories (a product fault, access). For the main one to reach three times its usual
    count, at odds under the surge's 1e-5, the incident must bring about twice the category's
    usual count on its own: 0.6 of the usual rate does with a margin (a fixed 60 messages
    would bring each category about 30, a surge in only some runs)."""

    incident: str = OUTAGE.name
    after_s: float = 300.0
    duration_s: float = 120.0
    intensity: float = 0.6
    count: int | None = None

    def size(self, rate: float) -> int:
        """How many messages the incident has when customers post ``rate`` a second."""
        if self.count is not None:
            return self.count
        return max(MIN_INCIDENT_MESSAGES, math.ceil(self.intensity * rate * self.duration_s))


def incident_message(
    serial: int, text: str, customer: Customer, rng: random.Random, *, run_id: str, channel: str
) -> dict[str, Any]:
    """One ingest event of the incident: the demo's usual message shape, with this text, on
    the channel the customer uses for the incident (``channel_of``)."""
    sample = Sample(text, None, None, None)
    return message(serial, customer, [sample], rng, run_id=run_id, channel=channel)


def burst(
    plan: IncidentPlan, rate: float, rng: random.Random, *, run_id: str
) -> list[tuple[float, dict[str, Any]]]:
    """The incident's ingest events, each with its seconds from the incident's start, in
    order: a customer of its own for each, on the channels customers use for the incident."""
    incident = INCIDENTS[plan.incident]
    count = plan.size(rate)
    written = texts(incident, count, rng)
    people = make_customers(count, rng)
    offsets = arrivals(count, plan.duration_s, rng)
    events = []
    for serial, (text, offset, person) in enumerate(zip(written, offsets, people, strict=True)):
        person.id = f"{run_id}-{serial}"
        channel = channel_of(incident, rng)
        body = incident_message(serial, text, person, rng, run_id=run_id, channel=channel)
        events.append((offset, body))
    return events
