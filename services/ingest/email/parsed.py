"""What parsing an e-mail gives: the parsed e-mail, its attachments' metadata, and the one
error it raises."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


class EmailParseError(ValueError):
    """Raised for input that is not a usable e-mail.

    ``str(exc)`` is a short, client-safe reason such as ``"missing From address"``; it never
    contains message text or addresses.
    """


@dataclass(frozen=True, slots=True)
class Attachment:
    """An attachment's metadata; the payload itself is never kept."""

    filename: str | None
    content_type: str
    size_bytes: int


@dataclass(frozen=True, slots=True)
class ParsedEmail:
    """The parts of an e-mail that the triage service uses.

    ``text`` is the customer's new text, at most ``max_text_chars`` characters; ``full_text``
    is the whole body text, or its first 200,000 characters.
    """

    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    sender_address: str
    sender_name: str | None
    to: tuple[str, ...]
    subject: str | None
    date: datetime | None
    text: str
    full_text: str
    html_only: bool
    attachments: tuple[Attachment, ...]
