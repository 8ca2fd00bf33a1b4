"""Turn raw RFC 822 e-mail bytes into clean customer text plus the metadata ingest needs.

Contact-centre platforms deliver customer e-mails as raw ``message/rfc822`` bytes. This module
parses them with the standard library :mod:`email` package and extracts:

* threading metadata (Message-ID, In-Reply-To, References), sender, recipients, subject, date;
* the body text, preferring the first ``text/plain`` part and falling back to the first
  ``text/html`` part converted to text;
* the customer's *new* text, with quoted reply history and the signature removed;
* a summary (name, type, size) of every attachment, never the payload itself, inline
  uuencoded files included.

:func:`parse_email` never raises anything but :class:`EmailParseError`, whatever the input
bytes: malformed headers, broken transfer encodings, unknown or wrong charsets and absurd MIME
structures degrade to a best-effort result or a short, client-safe error reason. Its cost is
bounded: messages with more MIME parts or lines than the limits are refused by cheap byte
counts before the standard library builds anything, and only a bounded prefix of the body text
goes through the line-by-line clean-up.

The modules, each built on the ones before it:

* :mod:`.parsed`: the results (:class:`ParsedEmail`, :class:`Attachment`) and
  :class:`EmailParseError`;
* :mod:`.text`: text clean-up and charset decoding;
* :mod:`.headers`: encoded words, the tolerant header policy, addresses, ids and dates;
* :mod:`.html_text`: HTML bodies as text (:func:`html_to_text`);
* :mod:`.mime`: the MIME structure, attachments and the choice of the body;
* :mod:`.reply`: quoted replies and signatures (:func:`strip_quoted_reply`,
  :func:`strip_signature`);
* :mod:`.parse`: the limits checked before parsing, and :func:`parse_email`.
"""

from services.ingest.email.html_text import html_to_text
from services.ingest.email.mime import MAX_NESTING_DEPTH, MAX_PARTS
from services.ingest.email.parse import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_TEXT_CHARS,
    TRUNCATION_MARKER,
    parse_email,
)
from services.ingest.email.parsed import Attachment, EmailParseError, ParsedEmail
from services.ingest.email.reply import strip_quoted_reply, strip_signature

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_TEXT_CHARS",
    "MAX_NESTING_DEPTH",
    "MAX_PARTS",
    "TRUNCATION_MARKER",
    "Attachment",
    "EmailParseError",
    "ParsedEmail",
    "html_to_text",
    "parse_email",
    "strip_quoted_reply",
    "strip_signature",
]
