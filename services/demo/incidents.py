"""Incidents for the demo and the trends benchmark: bursts of similar complaints (an outage, a
failed delivery round, a double charge), each written many ways as real customers would.

Pure builders: an ``Incident`` is a set of phrasings and the channels customers use for it;
``texts`` draws distinct messages from it and ``arrivals`` spreads them over the incident.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

from services.demo.traffic import Customer, Sample, message


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


@dataclass(frozen=True)
class IncidentPlan:
    """When the demo's incident starts and how big it is: ``count`` messages about
    ``incident`` spread over ``duration_s``, ``after_s`` seconds into the demo."""

    incident: str = OUTAGE.name
    after_s: float = 300.0
    count: int = 60
    duration_s: float = 120.0


def incident_message(
    serial: int, text: str, customer: Customer, rng: random.Random, *, run_id: str
) -> dict[str, Any]:
    """One ingest event of the incident: the demo's usual message shape, with this text."""
    return message(serial, customer, [Sample(text, None, None, None)], rng, run_id=run_id)
