"""Builders of router inputs for the tests."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services.common.messages import (
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
from services.router.commands import COMMAND_TYPES, Action, ClassifiedIn, Command, Labels
from services.router.engine import Engine, EngineSettings
from services.router.roster import AgentProfile, Roster, parse_roster
from services.router.sla import SlaConfig, load_sla_config

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
_counter = itertools.count()

SLA_YAML = """
warning_share: 0.5
on_warning: [notify]
on_breach: [notify, escalate]
calendars:
  always: {timezone: UTC, always_open: true}
targets:
  "*":
    "*": {first_response: 10m, next_response: 10m, resolution: 1h, follow_up: 1d}
"""


def sla_config(text: str = SLA_YAML) -> SlaConfig:
    return load_sla_config(text)


def agent(agent_id: str, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": agent_id,
        "name": agent_id.title(),
        "team": "care",
        "tier": "frontline",
        "skills": {"product_fault": 3, "delay": 3, "billing": 3},
        "languages": ["en"],
        "channels": {"email": 2, "chat": 2, "social": 2},
        "authority": {"refund": 100, "replacement": 100, "goodwill_credit": 50},
        "hostile": True,
        "presence": "available",
    }
    base.update(overrides)
    return base


def roster(*agents: dict[str, Any], teams: list[dict[str, Any]] | None = None) -> Roster:
    return parse_roster(
        {
            "default_team": "care",
            "teams": teams
            or [
                {
                    "id": "care",
                    "name": "Care",
                    "categories": ["product_fault", "delay", "billing"],
                },
                {"id": "trust", "name": "Trust", "categories": ["trust_privacy"]},
            ],
            "agents": list(agents),
        }
    )


def engine(
    *agents: dict[str, Any], teams: list[dict[str, Any]] | None = None, **settings: Any
) -> Engine:
    defaults: dict[str, Any] = {"offer_timeout": timedelta(seconds=30)}
    defaults.update(settings)
    return Engine(roster(*agents, teams=teams), sla_config(), EngineSettings(**defaults))


def feedback(
    text: str = "My parcel never arrived and nobody answers.",
    *,
    customer: str | None = None,
    channel: Channel = Channel.EMAIL,
    category: str = "delay",
    difficult: str = "none",
    sentiment_score: float = -0.6,
    tier: CustomerTier | None = None,
    language: str | None = "en",
    amounts: tuple[float, ...] = (),
    message_id: str | None = None,
    in_reply_to: str | None = None,
    conversation_id: str | None = None,
    public_reach: int | None = None,
    repeat: bool = False,
    unsure: str | None = None,
    at: datetime = T0,
) -> ClassifiedIn:
    """A classified message; ``unsure``: the runner-up category of a category tag the
    classifier was unsure of (the message needs review)."""
    n = next(_counter)
    source_id = f"src-{n}-{uuid.uuid4().hex[:6]}"
    social = None
    if channel == Channel.SOCIAL:
        social = SocialDetails(
            network="x",
            kind=SocialKind.POST,
            handle="@c",
            public=public_reach is not None,
            reach=public_reach,
        )
    received = FeedbackReceived(
        event_id=event_id_for("test", source_id),
        source=Source(platform="test", event_id=source_id),
        channel=channel,
        customer=Customer(id=customer or f"cust-{n}", tier=tier),
        text=text,
        thread=Thread(
            message_id=message_id,
            in_reply_to=in_reply_to,
            conversation_id=conversation_id,
        ),
        received_at=at,
        social=social,
    )
    sentiment = "negative" if sentiment_score < 0 else "positive"
    return ClassifiedIn(
        at=at,
        feedback=FeedbackClassified(
            event_id=received.event_id,
            feedback=received,
            sentiment=Tag(label=sentiment, probability=0.9),
            sentiment_score=sentiment_score,
            category=Tag(label=category, probability=0.9)
            if unsure is None
            else Tag(
                label=category,
                probability=0.41,
                runner_up=unsure,
                runner_up_probability=0.38,
                needs_review=True,
            ),
            difficult=Tag(label=difficult, probability=0.9),
            needs_review=unsure is not None,
            facts=Facts(
                amounts=tuple(Money(amount=a, currency="EUR", text=f"€{a}") for a in amounts),
                language=language,
            ),
            history=CustomerHistory(
                window_days=30,
                recent_messages=3 if repeat else 0,
                recent_complaints=3 if repeat else 0,
                recent_negative=0,
                repeat_complainer=repeat,
            ),
            model_version="test",
            classified_at=at,
        ),
    )


def command(
    actor: str,
    action: Action,
    case_id: uuid.UUID | None = None,
    *,
    at: datetime = T0,
    labels: Labels | None = None,
    profile: AgentProfile | None = None,
    **fields: Any,
) -> Command:
    """The model of ``action``, given the fields it takes (those left None are left out)."""
    given = {"case_id": case_id, "labels": labels, "profile": profile, **fields}
    return COMMAND_TYPES[action](
        command_id=uuid.uuid4(),
        actor=actor,
        at=at,
        **{name: value for name, value in given.items() if value is not None},
    )
