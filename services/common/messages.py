"""Kafka message models shared by the services.

Every record on a topic is one of these models serialised as JSON. They are strict
(``extra="forbid"``), carry a ``schema_version`` and an ``event_id``, and use UTC timestamps.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, Field

from services.common.models import FrozenModel

#: Namespace of the deterministic event ids: one source event always maps to one event id.
EVENT_ID_NAMESPACE = uuid.UUID("6f1f9d1e-3c55-4d8e-9a8e-2b7a3c1d0e42")


def event_id_for(platform: str, source_event_id: str) -> uuid.UUID:
    """The event id of a platform's event: the same pair always gives the same id.

    Ingest replicas and retries therefore agree on the id, and consumers can drop repeats.
    """
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"{platform}\x00{source_event_id}")


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # A time at the very edge of the calendar (year 1 or 9999) whose offset moves it out.
        raise ValueError("the time is out of range once converted to UTC") from None


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


class Channel(StrEnum):
    """Where the customer wrote."""

    EMAIL = "email"
    CHAT = "chat"
    SOCIAL = "social"
    PHONE = "phone"
    WEB = "web"
    SURVEY = "survey"


class CustomerTier(StrEnum):
    """The customer's value to the business; higher tiers raise a case's priority."""

    STANDARD = "standard"
    PREMIUM = "premium"
    VIP = "vip"


class Sentiment(StrEnum):
    """The customer's overall feeling."""

    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


class Category(StrEnum):
    """What the message is about."""

    PRODUCT_FAULT = "product_fault"
    BILLING = "billing"
    DELAY = "delay"
    STAFF_CONDUCT = "staff_conduct"
    COMMUNICATION = "communication"
    BROKEN_PROMISE = "broken_promise"
    POLICY = "policy"
    TRUST_PRIVACY = "trust_privacy"
    ACCESS_INCONVENIENCE = "access_inconvenience"
    PRAISE = "praise"
    SUGGESTION = "suggestion"


class DifficultType(StrEnum):
    """How the customer behaves, which decides how the agent should handle them."""

    NONE = "none"
    ANGRY = "angry"
    ABUSIVE = "abusive"
    DEMANDING = "demanding"
    STUBBORN = "stubborn"
    KNOW_IT_ALL = "know_it_all"
    WHINER = "whiner"
    CHATTERBOX = "chatterbox"
    QUIET = "quiet"
    JESTER = "jester"


class ChatRole(StrEnum):
    """Who spoke a turn of a chat transcript."""

    CUSTOMER = "customer"
    AGENT = "agent"
    BOT = "bot"
    SYSTEM = "system"


class SocialKind(StrEnum):
    """What kind of social-media message it is."""

    POST = "post"
    REPLY = "reply"
    COMMENT = "comment"
    REVIEW = "review"
    DIRECT_MESSAGE = "direct_message"


class Customer(FrozenModel):
    """Who the message is from, as far as the posting platform knows."""

    id: str = Field(min_length=1, max_length=256, description="The platform's customer reference.")
    tier: CustomerTier | None = None
    language: str | None = Field(
        default=None, max_length=35, description="Preferred language, a BCP 47 tag such as 'en-GB'."
    )
    name: str | None = Field(default=None, max_length=256)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=64)
    handle: str | None = Field(default=None, max_length=256)


class Source(FrozenModel):
    """Which platform posted the event and its own id for it."""

    platform: str = Field(min_length=1, max_length=64)
    event_id: str = Field(min_length=1, max_length=256)


class Thread(FrozenModel):
    """References that tie a message to a conversation."""

    message_id: str | None = Field(default=None, max_length=998)
    in_reply_to: str | None = Field(default=None, max_length=998)
    references: tuple[str, ...] = Field(default=(), max_length=100)
    conversation_id: str | None = Field(default=None, max_length=256)


class Attachment(FrozenModel):
    """An attachment's description; the content itself is never carried."""

    filename: str | None = Field(default=None, max_length=512)
    content_type: str = Field(max_length=255)
    size_bytes: int = Field(ge=0)


class EmailDetails(FrozenModel):
    """What an e-mail adds to the canonical event."""

    sender: str = Field(max_length=320)
    recipients: tuple[str, ...] = Field(default=(), max_length=200)
    html_only: bool = False
    attachments: tuple[Attachment, ...] = Field(default=(), max_length=500)


class ChatTurn(FrozenModel):
    """One turn of a chat transcript."""

    role: ChatRole
    text: str = Field(max_length=32_000)
    at: UtcDatetime | None = None
    author: str | None = Field(default=None, max_length=256)


class ChatDetails(FrozenModel):
    """The whole transcript of a chat; the customer's turns are the event's text."""

    transcript: tuple[ChatTurn, ...] = Field(min_length=1, max_length=1000)


class SocialDetails(FrozenModel):
    """What a social-media post adds: who can see it and how many."""

    network: str = Field(max_length=64)
    kind: SocialKind
    handle: str = Field(max_length=256)
    public: bool
    followers: int | None = Field(default=None, ge=0)
    reach: int | None = Field(default=None, ge=0, description="Estimated audience of the post.")
    url: str | None = Field(default=None, max_length=2048)
    verified: bool = False


class FeedbackReceived(FrozenModel):
    """One customer message from any channel, normalised (topic ``feedback.received``)."""

    schema_version: Literal[1] = 1
    event_type: Literal["FeedbackReceived"] = "FeedbackReceived"
    event_id: uuid.UUID
    source: Source
    channel: Channel
    customer: Customer
    subject: str | None = Field(default=None, max_length=998)
    text: str = Field(min_length=1)
    thread: Thread = Thread()
    occurred_at: UtcDatetime | None = None
    received_at: UtcDatetime
    email: EmailDetails | None = None
    chat: ChatDetails | None = None
    social: SocialDetails | None = None
    attributes: dict[str, str] = Field(default_factory=dict)


class Tag(FrozenModel):
    """One tag of a message: the label, its probability, and the runner-up."""

    label: str
    probability: float = Field(ge=0, le=1)
    runner_up: str | None = None
    runner_up_probability: float | None = Field(default=None, ge=0, le=1)
    needs_review: bool = Field(
        default=False, description="The probability is below the tag's confidence threshold."
    )


class Money(FrozenModel):
    """An amount of money the customer mentions."""

    amount: float = Field(ge=0)
    currency: str | None = Field(default=None, description="ISO 4217 code, when it can be told.")
    text: str = Field(max_length=64, description="The amount as written.")


class ReferenceKind(StrEnum):
    """What a reference number identifies."""

    ORDER = "order"
    ACCOUNT = "account"
    BOOKING = "booking"
    INVOICE = "invoice"
    TICKET = "ticket"
    TRACKING = "tracking"
    OTHER = "other"


class Reference(FrozenModel):
    """An order, account, booking or similar reference found in the text."""

    kind: ReferenceKind
    value: str = Field(max_length=64)


class Facts(FrozenModel):
    """Facts extracted from the text for routing and for the agent."""

    amounts: tuple[Money, ...] = ()
    references: tuple[Reference, ...] = ()
    language: str | None = Field(default=None, description="ISO 639-1 code of the text.")
    language_confidence: float | None = Field(default=None, ge=0, le=1)


class CustomerHistory(FrozenModel):
    """What the classifier remembers of the customer's recent messages."""

    window_days: int
    recent_messages: int = Field(ge=0, description="Messages in the window, this one excluded.")
    recent_complaints: int = Field(ge=0, description="Of those, complaints (not praise).")
    recent_negative: int = Field(ge=0, description="Of those, negative ones.")
    repeat_complainer: bool
    last_seen_at: UtcDatetime | None = None
    last_sentiment: Sentiment | None = None
    last_category: Category | None = None
    last_difficult: DifficultType | None = None


class EmbeddingSketch(FrozenModel):
    """The text's embedding, compactly: a random projection quantised to int8 (see
    ``services/common/sketch.py``), for comparing messages with each other (trends)."""

    scheme: Literal["rp128-i8"] = "rp128-i8"
    values: str = Field(
        min_length=172,
        max_length=172,
        pattern=r"^[A-Za-z0-9+/]+=*$",
        description="128 int8 values, base64.",
    )


class FeedbackClassified(FrozenModel):
    """A message with its tags, facts and customer history (topic ``feedback.classified``).

    ``embedding`` was added within schema version 1: it is optional, so readers of this version
    accept records written with or without it.
    """

    schema_version: Literal[1] = 1
    event_type: Literal["FeedbackClassified"] = "FeedbackClassified"
    event_id: uuid.UUID = Field(description="Same id as the FeedbackReceived it classifies.")
    feedback: FeedbackReceived
    sentiment: Tag
    sentiment_score: float = Field(ge=-1, le=1, description="P(positive) - P(negative).")
    category: Tag
    difficult: Tag
    needs_review: bool = Field(
        description="True when any tag is below its threshold or the text is out of scope."
    )
    review_reason: str | None = Field(
        default=None,
        max_length=200,
        description="Why the text itself needs review: too short to tag, or another language.",
    )
    facts: Facts
    history: CustomerHistory
    model_version: str
    classified_at: UtcDatetime
    embedding: EmbeddingSketch | None = Field(
        default=None,
        description="A sketch of the text's embedding under model_version (comparable only "
        "with sketches of the same model version).",
    )


#: The most bytes of a refused record's value a dead letter carries: in base64 it stays well
#: under Kafka's default largest record (1 MB) even when the value was as large as that.
DEAD_LETTER_VALUE_BYTES = 512 * 1024
DEAD_LETTER_KEY_BYTES = 1024


def dead_letter_key(key: bytes | None) -> bytes | None:
    """The key a dead letter is sent with: the record's own, cut to DEAD_LETTER_KEY_BYTES."""
    return None if key is None else key[:DEAD_LETTER_KEY_BYTES]


class DeadLetter(FrozenModel):
    """A record that could not be processed (topic ``<topic>.dlq``), with the reason."""

    schema_version: Literal[1] = 1
    event_type: Literal["DeadLetter"] = "DeadLetter"
    source_topic: str
    partition: int
    offset: int
    key: str | None = Field(
        default=None,
        description="The record's key, base64; only its first DEAD_LETTER_KEY_BYTES when it "
        "was larger (see key_truncated).",
    )
    key_truncated: bool = Field(
        default=False, description="The key was larger than it could be carried whole."
    )
    value: str = Field(
        description="The record's value as received, base64; only its first "
        "DEAD_LETTER_VALUE_BYTES when it was larger (see value_truncated)."
    )
    value_bytes: int | None = Field(default=None, ge=0, description="The value's full size.")
    value_truncated: bool = Field(
        default=False, description="The value was larger than it could be carried whole."
    )
    reason: str = Field(max_length=2000)
    error_type: str
    failed_at: UtcDatetime
    service: str

    @classmethod
    def for_record(
        cls,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        reason: str,
        error_type: str,
        service: str,
        now: datetime,
    ) -> DeadLetter:
        """The dead letter of a record: its original bytes (the first DEAD_LETTER_VALUE_BYTES
        of a larger value and DEAD_LETTER_KEY_BYTES of a larger key, which whole would not fit
        in a record once in base64) and why it was refused."""
        value = value or b""
        return cls(
            source_topic=topic,
            partition=partition,
            offset=offset,
            key=base64.b64encode(key[:DEAD_LETTER_KEY_BYTES]).decode() if key is not None else None,
            key_truncated=key is not None and len(key) > DEAD_LETTER_KEY_BYTES,
            value=base64.b64encode(value[:DEAD_LETTER_VALUE_BYTES]).decode(),
            value_bytes=len(value),
            value_truncated=len(value) > DEAD_LETTER_VALUE_BYTES,
            reason=reason[:2000],
            error_type=error_type,
            failed_at=now,
            service=service,
        )


class Correction(FrozenModel):
    """A supervisor's correction of a message's tags (topic ``feedback.corrections``).

    Corrections are training data: ``triage train --corrections`` reads the topic, and the
    latest correction of a message outranks any other label of the same text.
    """

    schema_version: Literal[1] = 1
    event_type: Literal["Correction"] = "Correction"
    correction_id: uuid.UUID = Field(description="Stable across replays of the same change.")
    case_id: uuid.UUID
    event_id: uuid.UUID = Field(description="The corrected message.")
    channel: Channel
    text: str
    label_sentiment: Sentiment | None = None
    label_category: Category | None = None
    label_difficult: DifficultType | None = None
    predicted_sentiment: str = Field(description="What the classifier had said.")
    predicted_category: str
    predicted_difficult: str
    corrected_by: str = Field(description="The supervisor's agent id.")
    corrected_at: UtcDatetime
