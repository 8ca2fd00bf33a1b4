"""Turns what each channel posts into the one canonical ``FeedbackReceived`` event.

Pure functions: the caller passes the platform, the limits and ``now``.
"""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import datetime

from services.common.messages import (
    Attachment,
    Channel,
    ChatDetails,
    ChatRole,
    ChatTurn,
    Customer,
    EmailDetails,
    FeedbackReceived,
    SocialDetails,
    SocialKind,
    Source,
    Thread,
    event_id_for,
)
from services.ingest.email import ParsedEmail
from services.ingest.models import ChatIn, CloudEventIn, FeedbackFields, FeedbackIn, SocialIn


class InputError(ValueError):
    """A field's value is unusable; ``loc`` names the field as in a validation error."""

    def __init__(self, loc: tuple[str | int, ...], msg: str) -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg


def clean_text(text: str, *, max_chars: int, loc: tuple[str | int, ...]) -> str:
    """Normalise a message text (NFC, newlines, no NUL, trimmed) and enforce the limits."""
    cleaned = unicodedata.normalize("NFC", text)
    cleaned = cleaned.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").strip()
    if not cleaned:
        raise InputError(loc, "text must not be empty or blank")
    if len(cleaned) > max_chars:
        raise InputError(loc, f"text is longer than {max_chars} characters")
    return cleaned


def _clip(value: str | None, limit: int) -> str | None:
    return value[:limit] if value is not None else None


# Bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069): in a subject, a
# name or a file name they make the text display in another order than it has, so that
# "invoice\u202egnp.exe" reads as "invoiceexe.png". Right-to-left letters display correctly
# without them.
_BIDI_CONTROLS = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])


def displayable(value: str | None) -> str | None:
    """A subject, name or file name as agents are shown it: without bidirectional controls;
    None when nothing visible is left."""
    if value is None:
        return None
    cleaned = value.translate(_BIDI_CONTROLS)
    return cleaned if cleaned.strip() else None


def _displayable_customer(customer: Customer) -> Customer:
    """The customer with a displayable name and handle (the id, an identity, is kept as sent)."""
    name, handle = displayable(customer.name), displayable(customer.handle)
    if (name, handle) == (customer.name, customer.handle):
        return customer
    return customer.model_copy(update={"name": name, "handle": handle})


def _from_fields(
    fields: FeedbackFields,
    *,
    source_event_id: str,
    platform: str,
    max_text_chars: int,
    now: datetime,
    loc: tuple[str | int, ...] = ("body",),
) -> FeedbackReceived:
    social = None
    if fields.social is not None:
        meta = fields.social
        social = SocialDetails(
            network=meta.network,
            kind=meta.kind,
            handle=meta.handle,
            public=meta.public,
            followers=meta.followers,
            reach=meta.reach if meta.reach is not None else meta.followers,
            url=meta.url,
            verified=meta.verified,
        )
    return FeedbackReceived(
        event_id=event_id_for(platform, source_event_id),
        source=Source(platform=platform, event_id=source_event_id),
        channel=fields.channel,
        customer=_displayable_customer(fields.customer),
        subject=displayable(fields.subject),
        text=clean_text(fields.text, max_chars=max_text_chars, loc=(*loc, "text")),
        thread=fields.thread or Thread(),
        occurred_at=fields.occurred_at,
        received_at=now,
        social=social,
        attributes=fields.attributes,
    )


def from_feedback(
    body: FeedbackIn, *, platform: str, max_text_chars: int, now: datetime
) -> FeedbackReceived:
    """The canonical JSON form."""
    return _from_fields(
        body, source_event_id=body.id, platform=platform, max_text_chars=max_text_chars, now=now
    )


def from_cloudevent(
    envelope: CloudEventIn, *, platform: str, max_text_chars: int, now: datetime
) -> FeedbackReceived:
    """A CloudEvents structured envelope; ``data`` holds the canonical fields."""
    data = envelope.data
    if data.occurred_at is None and envelope.time is not None:
        data = data.model_copy(update={"occurred_at": envelope.time})
    if data.subject is None and envelope.subject is not None:
        data = data.model_copy(update={"subject": envelope.subject})
    return _from_fields(
        data,
        source_event_id=data.id or envelope.id,
        platform=platform,
        max_text_chars=max_text_chars,
        now=now,
        loc=("body", "data"),
    )


def from_chat(
    body: ChatIn, *, platform: str, max_text_chars: int, now: datetime
) -> FeedbackReceived:
    """A chat transcript: the customer's turns, in order, are the text."""
    customer_turns = [t.text.strip() for t in body.turns if t.role is ChatRole.CUSTOMER]
    customer_turns = [t for t in customer_turns if t]
    if not customer_turns:
        raise InputError(("body", "turns"), "the transcript has no customer turn with text")
    occurred_at = body.occurred_at or next(
        (t.at for t in body.turns if t.role is ChatRole.CUSTOMER and t.at is not None), None
    )
    transcript = tuple(
        ChatTurn(role=t.role, text=t.text, at=t.at, author=displayable(t.author))
        for t in body.turns
    )
    return FeedbackReceived(
        event_id=event_id_for(platform, body.id),
        source=Source(platform=platform, event_id=body.id),
        channel=Channel.CHAT,
        customer=_displayable_customer(body.customer),
        subject=displayable(body.subject),
        text=clean_text("\n".join(customer_turns), max_chars=max_text_chars, loc=("body", "turns")),
        thread=Thread(conversation_id=body.conversation_id),
        occurred_at=occurred_at,
        received_at=now,
        chat=ChatDetails(transcript=transcript),
        attributes=body.attributes,
    )


def from_social(
    body: SocialIn, *, platform: str, max_text_chars: int, now: datetime
) -> FeedbackReceived:
    """A social-media message: visibility and reach travel with it."""
    public = body.public if body.public is not None else body.kind is not SocialKind.DIRECT_MESSAGE
    reach = body.reach if body.reach is not None else (body.author.followers if public else 0)
    customer = body.customer or Customer(
        id=f"{body.network}:{body.author.handle}", name=body.author.name, handle=body.author.handle
    )
    if customer.handle is None:
        customer = customer.model_copy(update={"handle": body.author.handle})
    return FeedbackReceived(
        event_id=event_id_for(platform, body.id),
        source=Source(platform=platform, event_id=body.id),
        channel=Channel.SOCIAL,
        customer=_displayable_customer(customer),
        text=clean_text(body.text, max_chars=max_text_chars, loc=("body", "text")),
        thread=Thread(
            message_id=body.id,
            in_reply_to=body.in_reply_to,
            conversation_id=body.conversation_id,
        ),
        occurred_at=body.occurred_at,
        received_at=now,
        social=SocialDetails(
            network=body.network,
            kind=body.kind,
            handle=displayable(body.author.handle) or "",
            public=public,
            followers=body.author.followers,
            reach=reach,
            url=body.url,
            verified=body.author.verified,
        ),
        attributes=body.attributes,
    )


def email_source_id(parsed: ParsedEmail, raw: bytes, idempotency_key: str | None) -> str:
    """The source event id of a raw e-mail: the caller's key, the Message-ID, or a hash."""
    if idempotency_key:
        return idempotency_key
    if parsed.message_id:
        return parsed.message_id
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def from_email(
    parsed: ParsedEmail,
    *,
    source_event_id: str,
    platform: str,
    max_text_chars: int,
    now: datetime,
    customer: Customer | None = None,
) -> FeedbackReceived:
    """A parsed e-mail: the sender is the customer, threading headers are kept."""
    if len(parsed.sender_address) > 256:
        raise InputError(("body",), "the From address is longer than 256 characters")
    sender_name = _clip(displayable(parsed.sender_name), 256)
    sender_customer = Customer(
        id=parsed.sender_address, email=parsed.sender_address, name=sender_name
    )
    if customer is not None:
        sender_customer = _displayable_customer(
            customer.model_copy(
                update={
                    "email": customer.email or parsed.sender_address,
                    "name": customer.name or sender_name,
                }
            )
        )
    return FeedbackReceived(
        event_id=event_id_for(platform, source_event_id),
        source=Source(platform=platform, event_id=source_event_id),
        channel=Channel.EMAIL,
        customer=sender_customer,
        subject=_clip(displayable(parsed.subject), 998),
        text=clean_text(parsed.text, max_chars=max_text_chars, loc=("body",)),
        thread=Thread(
            message_id=_clip(parsed.message_id, 998),
            in_reply_to=_clip(parsed.in_reply_to, 998),
            references=tuple(ref[:998] for ref in parsed.references[-100:]),
        ),
        occurred_at=parsed.date,
        received_at=now,
        email=EmailDetails(
            sender=parsed.sender_address,
            recipients=tuple(address[:320] for address in parsed.to[:200]),
            html_only=parsed.html_only,
            attachments=tuple(
                Attachment(
                    filename=_clip(displayable(a.filename), 512),
                    content_type=a.content_type[:255],
                    size_bytes=a.size_bytes,
                )
                for a in parsed.attachments[:500]
            ),
        ),
    )
