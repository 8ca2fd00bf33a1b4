"""The entry point, :func:`parse_email`: cheap refusals by byte counts, the standard parser
under a tolerant policy, and the :class:`ParsedEmail` built from the parts."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import Policy
from typing import Final

from services.ingest.email.headers import (
    MAX_ADDRESS_HEADER_CHARS,
    TolerantPolicy,
    decoded_header,
    first_header,
    header_text,
    parse_addresses,
    parse_date,
    parse_message_ids,
    raw_headers,
    unique,
)
from services.ingest.email.mime import (
    MAX_PARTS,
    ChosenBody,
    bounded_text,
    choose_body,
    is_attachment,
    leaf_parts,
    part_size,
)
from services.ingest.email.parsed import Attachment, EmailParseError, ParsedEmail
from services.ingest.email.reply import strip_quoted_reply, strip_signature
from services.ingest.email.text import tidy

DEFAULT_MAX_BYTES: Final = 2 * 1024 * 1024
# The same default as ingest's ``max_text_chars`` setting, so that a long text is cut here
# rather than refused there.
DEFAULT_MAX_TEXT_CHARS: Final = 20_000
# Ends a customer text that was cut to the text limit.
TRUNCATION_MARKER: Final = "[message truncated]"

# The standard MIME parser checks every line against every open multipart boundary. Input
# whose boundary declarations times lines exceeds this is rejected before parsing.
_MAX_STRUCTURE_WORK: Final = 4_000_000
# The standard parser builds each MIME part in Python (about 60 µs a part), so the part limit
# is enforced by counting delimiter lines before parsing. Message objects created during
# parsing are counted as well, for structures the byte count cannot see (RFC 2231 boundaries,
# nested messages); that backstop is looser, so that nesting depth keeps its own reason.
_MAX_MESSAGE_OBJECTS: Final = 4 * MAX_PARTS
# The standard parser handles every line in Python: about half a microsecond a body line and
# several for a header line. A 10 MiB attachment in base64 has about 140,000 lines; a larger
# message may have more lines if they are this long on average, as base64 lines are.
_MAX_LINES: Final = 300_000
_MIN_AVERAGE_LINE_BYTES: Final = 60
_MAX_HEADER_LIKE_LINES: Final = 50_000


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def _customer_text(body: ChosenBody) -> str:
    text = tidy(strip_signature(strip_quoted_reply(bounded_text(body.reply_text))))
    return text or body.full_text


def _truncate(text: str, limit: int) -> str:
    """At most ``limit`` characters, counted as the published event counts them (NFC).

    A longer text keeps its beginning, where the customer's words are, cut at a word boundary
    when one is near, and ends with :data:`TRUNCATION_MARKER`.
    """
    normalised = unicodedata.normalize("NFC", text)
    if len(normalised) <= limit:
        return text
    room = limit - len(TRUNCATION_MARKER) - 2
    if room <= 0:
        return normalised[:limit]
    head = normalised[:room]
    boundary = max(head.rfind(" "), head.rfind("\n"))
    if boundary > room * 3 // 4:
        head = head[:boundary]
    return head.rstrip() + "\n\n" + TRUNCATION_MARKER


def _structure_work(data: bytes) -> int:
    """An upper bound on the MIME parser's boundary checks: boundaries declared times lines."""
    boundaries = data.lower().count(b"boundary")
    if boundaries < 2:
        return 0
    return boundaries * _line_count(data)


def _line_count(data: bytes) -> int:
    return max(data.count(b"\n"), data.count(b"\r"))


_BOUNDARY_PARAMETER_RE: Final = re.compile(
    rb'boundary\s*=\s*(?:"([^"\r\n]*)"|([^\s;"]+))', re.IGNORECASE
)
_DASH_LINE_RE: Final = re.compile(rb"(?:^|(?<=[\r\n]))--([^\r\n]*)")
# Boundaries counted one by one with bytes.count; more are counted line by line.
_MAX_COUNTED_BOUNDARIES: Final = 4
_HEADER_LIKE_LINE_RE: Final = re.compile(rb"[\r\n][!-9;-~]+:")


def _part_delimiters(data: bytes) -> int:
    """How many lines open a MIME part: "--" and a declared boundary, alone on the line.

    Byte counts, run before the standard library builds any part. A boundary is declared by
    any ``boundary=`` in the message; lines that the parser would not take as delimiters
    because their multipart is not open are counted too, and so are lines that merely start
    with a delimiter and a space: an over-count only matters for a message near the limit.
    """
    if data.count(b"\n--") + data.count(b"\r--") + 1 <= MAX_PARTS:
        return 0
    boundaries = {
        (quoted or bare).rstrip() for quoted, bare in _BOUNDARY_PARAMETER_RE.findall(data)
    }
    boundaries.discard(b"")
    if len(boundaries) > _MAX_COUNTED_BOUNDARIES:
        # Only reached with few lines: _structure_work bounds boundaries times lines.
        rests = Counter(_DASH_LINE_RE.findall(data))
        return sum(count for rest, count in rests.items() if rest.rstrip(b" \t") in boundaries)
    count = 0
    for boundary in boundaries:
        delimiter = b"--" + boundary
        count += data.startswith(delimiter) and not data.startswith(delimiter + b"--")
        # LF and CRLF line ends, trailing whitespace, and CR-only line ends.
        count += sum(data.count(b"\n" + delimiter + end) for end in (b"\n", b"\r", b" ", b"\t"))
        count += data.count(b"\r" + delimiter + b"\r")
    return count


def _check_size_of_structure(data: bytes) -> None:
    """Refuse, by counting bytes, a message whose parsing would take unreasonably long."""
    if _structure_work(data) > _MAX_STRUCTURE_WORK:
        raise EmailParseError("message structure is too complex")
    if _part_delimiters(data) > MAX_PARTS:
        raise EmailParseError("message has too many parts")
    if _line_count(data) > max(_MAX_LINES, len(data) // _MIN_AVERAGE_LINE_BYTES):
        raise EmailParseError("message structure is too complex")
    if len(_HEADER_LIKE_LINE_RE.findall(data)) > _MAX_HEADER_LIKE_LINES:
        raise EmailParseError("message structure is too complex")


_UTF8_BOM: Final = b"\xef\xbb\xbf"
_HEADER_FIELD_RE: Final = re.compile(rb"[!-9;-~]+:")
_KNOWN_HEADER_RE: Final = re.compile(
    rb"(?:From|To|Cc|Bcc|Subject|Date|Message-ID|In-Reply-To|References|Reply-To|Sender"
    rb"|MIME-Version|Content-[A-Za-z-]+|Received|Return-Path|Delivered-To|DKIM-Signature"
    rb"|ARC-[A-Za-z-]+|Authentication-Results|Thread-Topic|Thread-Index|Importance|Priority"
    rb"|List-[A-Za-z-]+|Organization|User-Agent|Accept-Language|X-[A-Za-z0-9-]+)[ \t]*:",
    re.IGNORECASE,
)
# How far below a line without a colon the next known header field may be for that line to
# count as the lost continuation of a folded header.
_LOST_FOLDING_LOOKAHEAD: Final = 20


def _restore_lost_folding(data: bytes) -> bytes:
    """Make continuation lines of header lines that lost their folding whitespace.

    The standard parser ends the header block at the first line that is neither a field nor a
    continuation, and reads the remaining headers and the raw MIME structure as the body. A
    line without a colon that is followed, before the blank line, by a known header field is
    a folded line whose leading whitespace was lost (by a gateway or a copy and paste) and gets
    it back. A body that starts without a blank line keeps starting there.
    """
    ends = [data.find(blank) for blank in (b"\n\n", b"\n\r\n", b"\r\r")]
    end = min((position for position in ends if position >= 0), default=-1)
    if end < 0:
        return data
    lines = data[: end + 1].splitlines(keepends=True)
    repaired = False
    for index, line in enumerate(lines):
        if line[:1] in (b" ", b"\t") or _HEADER_FIELD_RE.match(line):
            continue
        if index == 0 and line.startswith(b"From "):
            continue  # an mbox "From " line
        following = lines[index + 1 : index + 1 + _LOST_FOLDING_LOOKAHEAD]
        field = next((line for line in following if _HEADER_FIELD_RE.match(line)), None)
        if field is None or not _KNOWN_HEADER_RE.match(field):
            return data
        lines[index] = b" " + line
        repaired = True
    return b"".join(lines) + data[end + 1 :] if repaired else data


def _new_parser() -> BytesParser[EmailMessage]:
    """A parser for one message, that gives up once it has built more message objects than a
    message may have."""
    policy = TolerantPolicy(header_cache={})
    created = 0

    def new_message(policy: Policy[EmailMessage] = policy) -> EmailMessage:
        nonlocal created
        created += 1
        if created > _MAX_MESSAGE_OBJECTS:
            raise EmailParseError("message has too many parts")
        return EmailMessage(policy)

    return BytesParser(new_message, policy=policy)


def _parse(data: bytes, max_text_chars: int) -> ParsedEmail:
    _check_size_of_structure(data)
    msg = _new_parser().parsebytes(_restore_lost_folding(data))

    senders = parse_addresses(raw_headers(msg, "from", limit=MAX_ADDRESS_HEADER_CHARS))
    if not senders:
        raise EmailParseError("missing From address")
    sender_name, sender_address = senders[0]

    leaves = leaf_parts(msg)
    body = choose_body(leaves)
    if not body.full_text:
        raise EmailParseError("message has no text content")
    text = _truncate(_customer_text(body), max_text_chars)

    attachments: list[Attachment] = []
    for leaf in leaves:
        if leaf is body.leaf:
            attachments.extend(body.inline_files)
        elif is_attachment(leaf):
            attachments.append(Attachment(leaf.filename, leaf.content_type, part_size(leaf)))
    recipients = parse_addresses(
        raw_headers(msg, "to", limit=MAX_ADDRESS_HEADER_CHARS)
        + raw_headers(msg, "cc", limit=MAX_ADDRESS_HEADER_CHARS)
    )
    subjects = raw_headers(msg, "subject")
    subject = decoded_header(subjects[0]) if subjects else None
    message_ids = parse_message_ids(first_header(msg, "message-id"), single=True)
    in_reply_to = parse_message_ids(first_header(msg, "in-reply-to"), single=False)
    references = [
        ref
        for value in raw_headers(msg, "references")
        for ref in parse_message_ids(header_text(value), single=False)
    ]

    return ParsedEmail(
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=unique(references),
        sender_address=sender_address,
        sender_name=sender_name,
        to=unique(address for _, address in recipients),
        subject=subject or None,
        date=parse_date(first_header(msg, "date")),
        text=text,
        full_text=body.full_text,
        html_only=body.html_only,
        attachments=tuple(attachments),
    )


def parse_email(
    raw: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
) -> ParsedEmail:
    """Parse a raw RFC 822 message into a :class:`ParsedEmail`.

    Raises :class:`EmailParseError`, and nothing else, for input that is not a usable e-mail:
    larger than ``max_bytes``, empty, without a From address, without any text, nested more
    than 50 levels deep, with more than 500 MIME parts, with more than 300,000 lines (unless
    they are 60 bytes long on average), with more than 50,000 lines that look like header
    fields, or with so many multipart boundaries over so many lines that parsing it would be
    unreasonably slow. These limits are checked by counting bytes before the message is
    parsed, so that a refusal is cheap. The customer text is cut to ``max_text_chars``
    characters (after NFC normalisation), ending with :data:`TRUNCATION_MARKER`, rather than
    refused. A UTF-8 byte-order mark before the first header is ignored.
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise TypeError("raw must be bytes")
    data = bytes(raw)
    if len(data) > max_bytes:
        raise EmailParseError(f"message exceeds {max_bytes} bytes")
    data = data.removeprefix(_UTF8_BOM)
    if not data.strip():
        raise EmailParseError("empty message")
    try:
        return _parse(data, max_text_chars)
    except EmailParseError:
        raise
    except RecursionError as exc:
        raise EmailParseError("message is nested too deeply") from exc
    except Exception:
        # The internal error is not chained: its message may quote parts of the input.
        raise EmailParseError("message could not be parsed") from None
