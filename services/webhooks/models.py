"""The webhook worker's own wire model: the dead letter of a delivery (topic ``webhooks.dlq``)."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from services.common.cases import CaseEventType
from services.common.messages import DEAD_LETTER_VALUE_BYTES, UtcDatetime
from services.common.models import FrozenModel


class WebhookDeadLetter(FrozenModel):
    """A case event one subscription did not accept within its retry budget, or a record of
    ``cases.events`` that could not be read (topic ``webhooks.dlq``, keyed by case id)."""

    schema_version: Literal[1] = 1
    event_type: Literal["WebhookDeadLetter"] = "WebhookDeadLetter"
    subscription: str = Field(description="The id of the subscription it was meant for.")
    webhook_id: str | None = Field(
        default=None, description="The webhook-id header it was sent with (the case event id)."
    )
    case_id: uuid.UUID | None = None
    case_event_type: CaseEventType | None = Field(
        default=None, description="The case event's type; null for an unreadable record."
    )
    source_topic: str
    partition: int
    offset: int
    value: str = Field(
        description="The body (the case event as received), base64; only its first "
        "DEAD_LETTER_VALUE_BYTES when it was larger (see value_truncated)."
    )
    value_bytes: int = Field(ge=0, description="The body's full size.")
    value_truncated: bool = False
    attempts: int = Field(ge=0, description="Delivery attempts made (0: never sent).")
    last_status: int | None = Field(
        default=None, description="The HTTP status of the last attempt, when one came back."
    )
    reason: str = Field(max_length=2000)
    error_type: str = Field(
        description="'http_status', 'timeout', 'connection', 'unreadable' or 'request'."
    )
    failed_at: UtcDatetime
    service: str = "webhooks"

    @classmethod
    def for_record(
        cls,
        *,
        subscription: str,
        topic: str,
        partition: int,
        offset: int,
        value: bytes,
        attempts: int,
        reason: str,
        error_type: str,
        now: datetime,
        webhook_id: str | None = None,
        case_id: uuid.UUID | None = None,
        case_event_type: CaseEventType | None = None,
        last_status: int | None = None,
    ) -> WebhookDeadLetter:
        """The dead letter of one delivery, its body cut to what a record can carry."""
        return cls(
            subscription=subscription,
            webhook_id=webhook_id,
            case_id=case_id,
            case_event_type=case_event_type,
            source_topic=topic,
            partition=partition,
            offset=offset,
            value=base64.b64encode(value[:DEAD_LETTER_VALUE_BYTES]).decode(),
            value_bytes=len(value),
            value_truncated=len(value) > DEAD_LETTER_VALUE_BYTES,
            attempts=attempts,
            last_status=last_status,
            reason=reason[:2000],
            error_type=error_type,
            failed_at=now,
        )
