"""HTTP request and response bodies of the ingest API (the wire format platforms post)."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.common.messages import (
    Channel,
    ChatRole,
    Customer,
    SocialKind,
    Thread,
    UtcDatetime,
)
from services.common.models import WireModel
from services.common.problems import FieldError as FieldError  # re-exported: errors of items
from services.common.problems import Problem

SourceEventId = Field(
    min_length=1,
    max_length=256,
    description="The platform's own id of this event; repeats are ignored.",
)
Attributes: Any = Field(
    default_factory=dict,
    max_length=50,
    description="Free-form string attributes kept with the event (ticket fields, tags).",
)

MINIMAL_EXAMPLE: dict[str, Any] = {
    "id": "zd-1001",
    "channel": "email",
    "customer": {"id": "cust-42"},
    "text": "My order #A-5521 arrived broken and nobody answers my emails.",
}


class SocialMeta(WireModel):
    """Who can see a social-media message, and how many people."""

    network: str = Field(min_length=1, max_length=64, examples=["x", "facebook", "trustpilot"])
    kind: SocialKind = SocialKind.POST
    handle: str = Field(min_length=1, max_length=256)
    public: bool = True
    followers: int | None = Field(default=None, ge=0, le=10**12)
    reach: int | None = Field(default=None, ge=0, le=10**12)
    url: str | None = Field(default=None, max_length=2048)
    verified: bool = False


class FeedbackFields(WireModel):
    """The canonical event's fields other than its id."""

    channel: Channel
    customer: Customer
    subject: str | None = Field(default=None, max_length=998)
    text: str = Field(
        description="The customer's message; limited to TRIAGE_INGEST_MAX_TEXT_CHARS."
    )
    thread: Thread | None = None
    occurred_at: UtcDatetime | None = Field(
        default=None, description="When the customer wrote, with a time zone (ISO 8601)."
    )
    social: SocialMeta | None = Field(
        default=None, description="Reach and visibility, for social-media messages."
    )
    attributes: dict[str, str] = Attributes


class FeedbackIn(FeedbackFields):
    """One customer message in the canonical form."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [MINIMAL_EXAMPLE]})

    id: str = SourceEventId


class CloudEventData(FeedbackFields):
    """The canonical event as CloudEvents ``data``; its id defaults to the envelope's id."""

    id: str | None = Field(default=None, min_length=1, max_length=256)


class CloudEventIn(BaseModel):
    """A CloudEvents 1.0 structured-mode JSON envelope around the canonical event."""

    model_config = ConfigDict(
        extra="ignore",  # extension attributes are allowed by the specification
        json_schema_extra={
            "examples": [
                {
                    "specversion": "1.0",
                    "id": "zd-1001",
                    "source": "/zendesk/acme",
                    "type": "com.example.feedback",
                    "datacontenttype": "application/json",
                    "data": {k: v for k, v in MINIMAL_EXAMPLE.items() if k != "id"},
                }
            ]
        },
    )

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=256)
    source: str = Field(min_length=1, max_length=2048)
    type: str = Field(min_length=1, max_length=256)
    datacontenttype: Literal["application/json"] | None = None
    subject: str | None = Field(default=None, max_length=998)
    time: UtcDatetime | None = None
    data: CloudEventData


class ChatTurnIn(WireModel):
    """One turn of a chat, in order."""

    role: ChatRole
    text: str = Field(max_length=32_000)
    at: UtcDatetime | None = None
    author: str | None = Field(default=None, max_length=256)


class ChatIn(WireModel):
    """A chat transcript; the customer's turns become the event's text."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "chat-77-end",
                    "customer": {"id": "cust-42", "language": "en"},
                    "conversation_id": "chat-77",
                    "turns": [
                        {"role": "bot", "text": "Hi! How can I help?"},
                        {"role": "customer", "text": "My refund still hasn't arrived."},
                        {"role": "agent", "text": "Let me check that for you."},
                        {"role": "customer", "text": "It's been three weeks."},
                    ],
                }
            ]
        },
    )

    id: str = SourceEventId
    customer: Customer
    conversation_id: str | None = Field(default=None, max_length=256)
    subject: str | None = Field(default=None, max_length=998)
    turns: list[ChatTurnIn] = Field(min_length=1, max_length=1000)
    occurred_at: UtcDatetime | None = None
    attributes: dict[str, str] = Attributes


class SocialAuthor(WireModel):
    """The account that wrote a social-media message."""

    handle: str = Field(min_length=1, max_length=256)
    name: str | None = Field(default=None, max_length=256)
    followers: int | None = Field(default=None, ge=0, le=10**12)
    verified: bool = False


class SocialIn(WireModel):
    """A social-media post, reply, review or direct message."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "x-1790000000001",
                    "network": "x",
                    "kind": "post",
                    "author": {"handle": "@jo_traveller", "followers": 48200},
                    "public": True,
                    "url": "https://x.example/jo_traveller/status/1790000000001",
                    "text": "@SkylineAir lost my bag AGAIN and nobody replies. Never again.",
                }
            ]
        },
    )

    id: str = SourceEventId
    network: str = Field(min_length=1, max_length=64)
    kind: SocialKind = SocialKind.POST
    author: SocialAuthor
    public: bool | None = Field(
        default=None, description="Visible to others; defaults to false for direct messages."
    )
    reach: int | None = Field(
        default=None, ge=0, le=10**12, description="Estimated audience; defaults to followers."
    )
    url: str | None = Field(default=None, max_length=2048)
    text: str
    customer: Customer | None = Field(
        default=None, description="The customer record, when the platform knows it."
    )
    in_reply_to: str | None = Field(default=None, max_length=256)
    conversation_id: str | None = Field(default=None, max_length=256)
    occurred_at: UtcDatetime | None = None
    attributes: dict[str, str] = Attributes


class BatchIn(BaseModel):
    """Several canonical events at once; each is validated and answered on its own."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"items": [MINIMAL_EXAMPLE]}]}
    )

    items: list[dict[str, Any]] = Field(
        min_length=1,
        description="Canonical events (see FeedbackIn); at most TRIAGE_INGEST_MAX_BATCH_ITEMS.",
        json_schema_extra={"items": {"$ref": "#/components/schemas/FeedbackIn"}},
    )


class Status(StrEnum):
    """What happened to one event."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    INVALID = "invalid"
    UNAVAILABLE = "unavailable"


class Accepted(BaseModel):
    """The event is durably on the broker (or was already)."""

    event_id: uuid.UUID
    status: Literal[Status.ACCEPTED, Status.DUPLICATE]


class BatchItemResult(BaseModel):
    """The outcome of one batch item, by its position in the request."""

    index: int
    status: Status
    event_id: uuid.UUID | None = None
    errors: list[FieldError] | None = None


class BatchResult(BaseModel):
    """Counts and per-item outcomes of a batch."""

    accepted: int
    duplicates: int
    invalid: int
    unavailable: int
    results: list[BatchItemResult]


#: A refusal: RFC 9457 problem details (``errors`` names the fields of an invalid request).
ErrorBody = Problem
