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
"""

from __future__ import annotations

import base64
import binascii
import email.errors
import encodings
import io
import mimetypes
import pkgutil
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import EmailPolicy, Policy, compat32
from email.utils import getaddresses, parsedate_to_datetime
from encodings.aliases import aliases as _CODEC_ALIASES
from html import unescape as _html_unescape
from typing import TYPE_CHECKING, Any, Final

from bs4 import BeautifulSoup
from bs4.element import NavigableString, PageElement, PreformattedString, Tag
from bs4.exceptions import ParserRejectedMarkup

__all__ = [
    "DEFAULT_MAX_TEXT_CHARS",
    "TRUNCATION_MARKER",
    "Attachment",
    "EmailParseError",
    "ParsedEmail",
    "html_to_text",
    "parse_email",
    "strip_quoted_reply",
    "strip_signature",
]

DEFAULT_MAX_BYTES: Final = 2 * 1024 * 1024
# The same default as ingest's ``max_text_chars`` setting, so that a long text is cut here
# rather than refused there.
DEFAULT_MAX_TEXT_CHARS: Final = 20_000
MAX_NESTING_DEPTH: Final = 50
MAX_PARTS: Final = 500
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
# The body text is cut to this many characters (at a line break) before flowed-text joining,
# uuencode detection, tidying and quote and signature stripping, whose cost grows with the
# number of lines. It is at least the largest text limit ingest can be configured with.
_MAX_BODY_CHARS: Final = 200_000
# Subject, ids and dates beyond this length are truncated before decoding.
_MAX_HEADER_CHARS: Final = 16 * 1024
# At most this many occurrences of one header field are read.
_MAX_HEADER_VALUES: Final = 100
# HTML beyond these limits is not converted: customer text sits at the top of a message, and
# the limits bound the time spent on adversarial markup.
_MAX_HTML_CHARS: Final = 500_000
_MAX_HTML_TAGS: Final = 20_000
# Address headers (From, To and Cc together) beyond this length are truncated before parsing.
_MAX_ADDRESS_HEADER_CHARS: Final = 64 * 1024
# MIME part headers (Content-Type, Content-Disposition, ...) beyond this length are truncated.
_MAX_PART_HEADER_CHARS: Final = 8 * 1024
# Lines longer than this are never treated as reply attributions or signature lines.
_MAX_MARKER_LINE_CHARS: Final = 500
_MAX_ADDRESS_CHARS: Final = 320


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


# --------------------------------------------------------------------------------------------
# Text clean-up
# --------------------------------------------------------------------------------------------

_INVISIBLE_RE: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\ufeff]")
_SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")
_MANY_NEWLINES_RE: Final = re.compile(r"\n{3,}")
_WHITESPACE_RE: Final = re.compile(r"\s+")


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _remove_invisible(text: str) -> str:
    """Drop control and zero-width characters; replace lone surrogates with U+FFFD."""
    text = _INVISIBLE_RE.sub("", text)
    return _SURROGATE_RE.sub("\ufffd", text)


def _tidy(text: str) -> str:
    """Normalise line endings, strip trailing spaces, allow one blank line in a row, strip."""
    text = _remove_invisible(_normalise_newlines(text))
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _MANY_NEWLINES_RE.sub("\n\n", text).strip()


def _collapse_whitespace(text: str) -> str:
    return _WHITESPACE_RE.sub(" ", _remove_invisible(text)).strip()


# --------------------------------------------------------------------------------------------
# Charsets
# --------------------------------------------------------------------------------------------

_CODEC_MODULES: Final = frozenset(m.name for m in pkgutil.iter_modules(encodings.__path__))
# Text codecs that are not real mail charsets, or that are slow on large input.
_DENIED_CODECS: Final = frozenset(
    {"idna", "punycode", "raw_unicode_escape", "unicode_escape", "undefined", "mbcs", "oem"}
)
# Labels that mail software commonly uses for a superset charset.
_CODEC_OVERRIDES: Final = {
    "latin_1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "utf_8": "utf_8_sig",
}
_FALLBACK_CODECS: Final = ("utf_8_sig", "cp1252")


def _codec_for(charset: str | None) -> str | None:
    """Map a declared MIME charset to a known Python codec name, or None."""
    if not charset:
        return None
    name = charset.strip().strip("\"'").split("*", 1)[0].lower()
    if not name or len(name) > 40:
        return None
    normalised = encodings.normalize_encoding(name)
    canonical = _CODEC_ALIASES.get(normalised, normalised)
    if canonical not in _CODEC_MODULES or canonical in _DENIED_CODECS:
        return None
    return _CODEC_OVERRIDES.get(canonical, canonical)


_ESCAPED_BYTE_RE: Final = re.compile("[\udc80-\udcff]")
_NON_ASCII_RE: Final = re.compile("[^\x00-\x7f]")


def _mostly_utf8(data: bytes) -> bool:
    """Whether the valid UTF-8 sequences in ``data`` are at least as many as the invalid bytes.

    Text in a single-byte charset (Latin-1, cp1252) is almost never valid UTF-8, so its
    non-ASCII bytes are all invalid; UTF-8 text with a stray byte has valid sequences around it.
    """
    text = data.decode("utf-8", "surrogateescape")
    invalid = len(_ESCAPED_BYTE_RE.findall(text))
    return invalid <= len(_NON_ASCII_RE.findall(text)) - invalid


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset, else UTF-8, else cp1252, else Latin-1; never fails.

    UTF-8 with a few invalid bytes keeps its text, with one replacement character for each
    invalid sequence, rather than turning the whole text into cp1252 mojibake.
    """
    declared = _codec_for(charset)
    candidates = dict.fromkeys(((declared,) if declared else ()) + _FALLBACK_CODECS)
    for codec in candidates:
        try:
            return data.decode(codec)
        except (LookupError, ValueError, TypeError):
            if codec == "utf_8_sig" and _mostly_utf8(data):
                return data.decode("utf_8_sig", errors="replace")
    return data.decode("latin-1", errors="replace")


def _to_bytes(text: str) -> bytes:
    """Recover the original bytes of a string decoded with ``surrogateescape``."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


# --------------------------------------------------------------------------------------------
# Headers
# --------------------------------------------------------------------------------------------

_ENCODED_WORD_RE: Final = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_LINE_BREAK_RE: Final = re.compile(r"[\r\n]+")
_HEADER_ERRORS: Final = (
    email.errors.MessageError,
    LookupError,
    ValueError,
    TypeError,
    AttributeError,
    RecursionError,
)


def _encoded_word_bytes(encoding: str, text: str) -> bytes | None:
    if encoding in "bB":
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            return None
    return binascii.a2b_qp(_to_bytes(text), header=True)


def _decode_rfc2047(value: str) -> str:
    """Decode RFC 2047 encoded words; adjacent words in one charset are joined before decoding.

    ``value`` may be a raw header value whose 8-bit bytes are surrogate escapes. Raw bytes
    inside an encoded word are decoded with the word's charset, and raw bytes elsewhere as
    UTF-8 or cp1252, so that neither is decoded twice.
    """
    out: list[str] = []
    pending_charset: str | None = None
    pending = bytearray()
    position = 0

    def flush() -> None:
        nonlocal pending_charset
        if pending_charset is not None:
            out.append(_decode_bytes(bytes(pending), pending_charset))
            pending.clear()
            pending_charset = None

    def plain(text: str) -> str:
        return _decode_bytes(_to_bytes(text), None) if _has_escapes(text) else text

    if "=?" not in value:
        return plain(value)
    for match in _ENCODED_WORD_RE.finditer(value):
        between = value[position : match.start()]
        if pending_charset is None or between.strip():
            flush()
            out.append(plain(between))
        position = match.end()
        charset = match.group(1).split("*", 1)[0].lower()
        data = _encoded_word_bytes(match.group(2), match.group(3))
        if data is None:
            flush()
            out.append(plain(match.group(0)))
            continue
        if charset != pending_charset:
            flush()
            pending_charset = charset
        pending.extend(data)
    flush()
    out.append(plain(value[position:]))
    return "".join(out)


def _has_escapes(text: str) -> bool:
    return _ESCAPED_BYTE_RE.search(text) is not None


def _header_text(raw: str) -> str:
    """A raw header value as text: 8-bit bytes decoded, folding undone, controls removed."""
    text = _decode_bytes(_to_bytes(raw), None)
    return _remove_invisible(_LINE_BREAK_RE.sub(" ", text))


def _decoded_header(raw: str) -> str:
    """A raw unstructured header value (subject, display name) as one line of text."""
    return _collapse_whitespace(_decode_rfc2047(_LINE_BREAK_RE.sub(" ", raw)))


def _raw_headers(msg: Message, name: str, *, limit: int = _MAX_HEADER_CHARS) -> list[str]:
    """The first raw values of a header field, each truncated to ``limit`` characters."""
    wanted = name.lower()
    values: list[str] = []
    for key, value in msg.raw_items():
        if key.lower() == wanted:
            values.append(str(value)[:limit])
            if len(values) == _MAX_HEADER_VALUES:
                break
    return values


def _first_header(msg: Message, name: str) -> str | None:
    values = _raw_headers(msg, name)
    return _header_text(values[0]) if values else None


if TYPE_CHECKING:
    _EmailPolicyBase = EmailPolicy[EmailMessage]
else:
    _EmailPolicyBase = EmailPolicy


_PARAMETER_HEADERS: Final = frozenset({"content-type", "content-disposition"})
_PARAMETER_RE: Final = re.compile(
    r'(?P<lead>;\s*(?P<name>[^\s=;"]+)\s*=\s*)(?P<value>"(?:[^"\\]|\\.)*"|[^;]*)', re.DOTALL
)
# RFC 2045 token characters: a parameter value made of these needs no quotes.
_TOKEN_RE: Final = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_QUOTED_PAIR_RE: Final = re.compile(r"\\(.?)", re.DOTALL)
# Parameters read through the standard library (RFC 2231 sections and encodings included),
# and how many of them are kept.
_USED_PARAMETER_RE: Final = re.compile(
    r"(?:boundary|charset|format|delsp|name|filename)(?:\*\d{1,2})?\*?", re.IGNORECASE
)
_MAX_PARAMETERS: Final = 24


def _keep_backslash(match: re.Match[str]) -> str:
    following = match.group(1)
    return match.group(0) if following in ("\\", '"') else "\\\\" + following


def _repair_parameter(match: re.Match[str]) -> str:
    value = match.group("value")
    if value.startswith('"'):
        return match.group("lead") + _QUOTED_PAIR_RE.sub(_keep_backslash, value)
    token = value.strip()
    if match.group("name").endswith("*") or not token or _TOKEN_RE.fullmatch(token):
        return match.group(0)
    quoted = token.replace("\\", "\\\\").replace('"', '\\"')
    return f'{match.group("lead")}"{quoted}"{value[len(value.rstrip()) :]}'


def _clean_parameters(value: str) -> str:
    """The parameters that this module reads, at most :data:`_MAX_PARAMETERS`, repaired.

    The structured header parser takes about 30 µs a parameter and a message may have 500
    parts, so other parameters are dropped. The values that real mailers leave unquoted or
    half-escaped are repaired: Outlook Express writes ``boundary=----=_NextPart_...`` and some
    mailers an encoded word as ``filename==?utf-8?B?...?=`` without quotes, and the header
    parser ends a bare value at the first ``=`` or ``?``, so they are quoted. Mailers on
    Windows write ``filename="C:\\TEMP\\x.png"`` with single backslashes, which the parser
    reads as quoted pairs (``C:TEMPx.png``): a backslash that escapes neither a quote nor a
    backslash is kept as a character.
    """
    main, separator, _ = value.partition(";")
    if not separator:
        return value
    kept: list[str] = []
    for match in _PARAMETER_RE.finditer(value):
        if _USED_PARAMETER_RE.fullmatch(match.group("name")):
            kept.append(_repair_parameter(match))
            if len(kept) == _MAX_PARAMETERS:
                break
    return main + "".join(kept)


class _TolerantPolicy(_EmailPolicyBase):
    """The default e-mail policy, except that header access never raises and is cached.

    A header value that the structured header parser rejects is returned as plain text, so
    that ``get_content_type()``, ``get_filename()`` and friends degrade instead of failing.
    Over-long values are truncated first, and the parameters of Content-Type and
    Content-Disposition are cleaned as :func:`_clean_parameters` describes (this is also where
    the parser reads a multipart's boundary). Each message is parsed with a new policy whose
    ``header_cache`` holds the values parsed so far: the parser and this module read the same
    part headers several times.
    """

    header_cache: dict[tuple[str, str], Any] | None = None

    def __init__(self, *, header_cache: dict[tuple[str, str], Any] | None = None) -> None:
        super().__init__()
        # Policies are immutable once made, as far as attribute assignment goes.
        object.__setattr__(self, "header_cache", header_cache)

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if not isinstance(value, str):
            return super().header_fetch_parse(name, value)
        key = (name.lower(), value[:_MAX_PART_HEADER_CHARS])
        cache = self.header_cache if self.header_cache is not None else {}
        if key not in cache:
            cache[key] = self._parse_header(*key)
        return cache[key]

    def _parse_header(self, name: str, value: str) -> Any:
        if name in _PARAMETER_HEADERS:
            value = _clean_parameters(value)
        try:
            return super().header_fetch_parse(name, value)
        except _HEADER_ERRORS:
            return _header_text(value)


# --------------------------------------------------------------------------------------------
# Addresses, ids, dates
# --------------------------------------------------------------------------------------------

_ADDRESS_FORBIDDEN_RE: Final = re.compile(r"[\s<>()\[\],;:\"\\]")
_ADDRESS_DELIMITERS_RE: Final = re.compile(r"[\s<>()\[\],;:\"\\]+")
_MESSAGE_ID_RE: Final = re.compile(r"<([^<>\s]+)>")


def _valid_address(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(
        at
        and local
        and domain
        and len(address) <= _MAX_ADDRESS_CHARS
        and not _ADDRESS_FORBIDDEN_RE.search(domain)
        and not any(ch.isspace() for ch in local)
    )


# One token of an address list: a quoted string, a comment, an angle address, a separator, a
# run of other text, or any other single character. Unterminated quotes, comments and angle
# addresses run to the end.
_ADDRESS_TOKEN_RE: Final = re.compile(
    r'"(?:[^"\\]|\\.)*"?|\((?:[^()\\]|\\.)*\)?|<[^<>]*>?|[,;]|[^,;"(<]+|.', re.DOTALL
)
_EMBEDDED_ADDRESS_RE: Final = re.compile(r"[^\s@<>()\[\]\"',;:]+@[^\s@<>()\[\]\"',;:]+\.\w")
_QUOTED_CHAR_RE: Final = re.compile(r"\\(.)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class _AddressEntry:
    """One comma-separated entry of an address list."""

    text: str
    # The text before the entry's angle address and the address inside it; None without one.
    display: str | None
    angle_address: str | None


def _address_entries(text: str) -> list[_AddressEntry]:
    """Split an address list at commas and semicolons outside quotes, comments and brackets."""
    entries: list[_AddressEntry] = []
    tokens: list[str] = []
    display: str | None = None
    angle_address: str | None = None
    for token in _ADDRESS_TOKEN_RE.findall(text):
        if token in (",", ";"):
            entries.append(_AddressEntry("".join(tokens), display, angle_address))
            tokens, display, angle_address = [], None, None
            continue
        if len(token) > 1 and token[0] == "<" and token[-1] == ">":
            display, angle_address = "".join(tokens), token[1:-1]
        tokens.append(token)
    entries.append(_AddressEntry("".join(tokens), display, angle_address))
    return entries


def _display_name(name: str) -> str | None:
    """The decoded display name; None when empty or when it shows an e-mail address.

    A display name such as ``alice@example.com`` in ``alice@example.com <bob@example.net>`` is
    how senders pose as someone else: only the address identifies the sender.
    """
    decoded = _decoded_header(name)
    if len(decoded) >= 2 and decoded[0] == decoded[-1] and decoded[0] in "'\"":
        decoded = decoded[1:-1].strip()
        decoded = _QUOTED_CHAR_RE.sub(r"\1", decoded) if "\\" in decoded else decoded
    if _EMBEDDED_ADDRESS_RE.search(decoded):
        return None
    return decoded or None


def _standard_pairs(texts: list[str]) -> list[tuple[str, str]]:
    try:
        return getaddresses(texts) if texts else []
    except (RecursionError, ValueError, TypeError, IndexError):
        return []


def _raw_pairs(entries: Iterable[_AddressEntry]) -> list[tuple[str, str]]:
    """(raw display name, raw address) pairs of address list entries, in order.

    An angle address is the entry's address whatever precedes it: the standard library would
    take an address-like display name (``alice@example.com <bob@example.net>``) as a second
    address, or as the only one. Entries without one are left to :func:`getaddresses`.
    """
    pairs: list[tuple[str, str]] = []
    pending: list[str] = []
    for entry in entries:
        if entry.angle_address is None or entry.display is None:
            pending.append(entry.text)
            continue
        pairs.extend(_standard_pairs(pending))
        pending = []
        display = entry.display
        if ":" in display and '"' not in display:
            display = display.rpartition(":")[2]  # a group name ("Team: Alice <a@x>")
        pairs.append((display, entry.angle_address.rpartition(":")[2]))
    pairs.extend(_standard_pairs(pending))
    return pairs


def _parse_addresses(values: Sequence[str]) -> list[tuple[str | None, str]]:
    """Valid (display name, lower-cased address) pairs from raw address header values, in order.

    The values keep their 8-bit bytes as surrogate escapes until the entries are split, so that
    display names are decoded once, with the charset of their encoded words.
    """
    raw = _LINE_BREAK_RE.sub(" ", ", ".join(values))[:_MAX_ADDRESS_HEADER_CHARS]
    result: list[tuple[str | None, str]] = []
    for name, raw_address in _raw_pairs(_address_entries(raw)):
        address = _header_text(raw_address).strip().lower()
        if _valid_address(address):
            result.append((_display_name(name), address))
    if not result:
        for token in _ADDRESS_DELIMITERS_RE.split(_header_text(raw)):
            address = token.lower()
            if _valid_address(address):
                result.append((None, address))
    return result


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _message_ids(value: str | None, *, single: bool) -> list[str]:
    """Message ids in a header value, angle brackets stripped."""
    if value is None:
        return []
    ids = _MESSAGE_ID_RE.findall(value)
    if ids:
        return ids
    tokens = value.split()
    if single:
        return tokens[:1] if len(tokens) == 1 else []
    return [token.strip("<>,;") for token in tokens if "@" in token.strip("<>,;")]


def _parse_date(value: str | None) -> datetime | None:
    if not value or not value.strip():
        return None
    try:
        parsed = parsedate_to_datetime(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (TypeError, ValueError, OverflowError, IndexError, AttributeError):
        return None


# --------------------------------------------------------------------------------------------
# MIME structure
# --------------------------------------------------------------------------------------------

_PART_ERRORS: Final = (*_HEADER_ERRORS, IndexError, KeyError)


@dataclass(frozen=True, slots=True)
class _Leaf:
    part: Message
    content_type: str
    disposition: str | None
    filename: str | None


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except _PART_ERRORS:
        return "application/octet-stream"


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except _PART_ERRORS:
        return None


def _clean_filename(name: str) -> str | None:
    decoded = _collapse_whitespace(_decode_rfc2047(name))
    decoded = decoded.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return decoded or None


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except _PART_ERRORS:
        return None
    return _clean_filename(name) if isinstance(name, str) else None


def _children(part: Message, content_type: str) -> list[Message] | None:
    """Sub-parts of a multipart container; None for leaves (``message/*`` parts are leaves)."""
    if content_type.startswith("message/") or not part.is_multipart():
        return None
    payload = part.get_payload()
    if not isinstance(payload, list):
        return None
    return [child for child in payload if isinstance(child, Message)]


def _leaves(root: Message) -> list[_Leaf]:
    """The leaf parts in document order, enforcing the depth and part-count limits."""
    leaves: list[_Leaf] = []
    stack: list[tuple[Message, int]] = [(root, 0)]
    seen = 0
    while stack:
        part, depth = stack.pop()
        seen += 1
        if seen > MAX_PARTS:
            raise EmailParseError("message has too many parts")
        if depth > MAX_NESTING_DEPTH:
            raise EmailParseError("message is nested too deeply")
        content_type = _content_type(part)
        children = _children(part, content_type)
        if children is None:
            leaves.append(_Leaf(part, content_type, _disposition(part), _filename(part)))
        else:
            stack.extend((child, depth + 1) for child in reversed(children))
    return leaves


def _payload_bytes(part: Message) -> bytes:
    """The decoded payload of a leaf part; never raises."""
    try:
        data = part.get_payload(decode=True)
    except _PART_ERRORS:
        data = None
    return data if isinstance(data, bytes) else b""


def _attached_message_size(part: Message) -> int:
    """Size of an attached message as serialised again; 0 when it cannot be serialised."""
    payload = part.get_payload() if part.is_multipart() else None
    if not isinstance(payload, list):
        return len(_payload_bytes(part))
    buffer = io.BytesIO()
    try:
        for sub in payload:
            if isinstance(sub, Message):
                BytesGenerator(buffer, mangle_from_=False, policy=compat32).flatten(sub)
    except (*_PART_ERRORS, UnicodeError):
        return 0
    return buffer.tell()


def _part_size(leaf: _Leaf) -> int:
    if leaf.content_type.startswith("message/"):
        return _attached_message_size(leaf.part)
    return len(_payload_bytes(leaf.part))


def _is_attachment(leaf: _Leaf) -> bool:
    maintype = leaf.content_type.split("/", 1)[0]
    return (
        leaf.content_type in ("message/rfc822", "message/global")
        or leaf.disposition == "attachment"
        or leaf.filename is not None
        or maintype not in ("text", "multipart", "message")
    )


def _param(part: Message, name: str) -> str:
    try:
        value = part.get_param(name)
    except _PART_ERRORS:
        return ""
    return value.strip().lower() if isinstance(value, str) else ""


def _charset(part: Message) -> str | None:
    try:
        return part.get_content_charset()
    except _PART_ERRORS:
        return None


def _unflow(text: str, *, delsp: bool) -> str:
    """Join the soft line breaks of RFC 3676 ``format=flowed`` text."""
    out: list[str] = []
    paragraph: list[str] = []
    paragraph_depth = 0

    def finish() -> None:
        prefix = ">" * paragraph_depth + " " if paragraph_depth else ""
        out.append(prefix + "".join(paragraph))
        paragraph.clear()

    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]
        if paragraph and depth != paragraph_depth:
            finish()
        paragraph_depth = depth
        if content.endswith(" ") and content != "-- ":
            paragraph.append(content[:-1] if delsp else content)
            continue
        paragraph.append(content)
        finish()
    if paragraph:
        finish()
    return "\n".join(out)


def _bounded_text(text: str) -> str:
    """The first :data:`_MAX_BODY_CHARS` characters of a text, cut at a line break if any."""
    if len(text) <= _MAX_BODY_CHARS:
        return text
    cut = text.rfind("\n", 0, _MAX_BODY_CHARS)
    return text[: cut if cut > 0 else _MAX_BODY_CHARS]


def _text_of(leaf: _Leaf) -> str:
    """The decoded text of a text/plain part (a bounded prefix), with flowed lines joined."""
    text = _decode_bytes(_payload_bytes(leaf.part), _charset(leaf.part))
    text = _bounded_text(_normalise_newlines(text))
    if _param(leaf.part, "format") == "flowed":
        text = _unflow(text, delsp=_param(leaf.part, "delsp") == "yes")
    return text


_UU_BEGIN_RE: Final = re.compile(r"begin [0-7]{3,4} +(\S[^\n]{0,254})")


def _uuencoded_size(lines: Sequence[str], start: int) -> tuple[int, int] | None:
    """(index after the block, decoded size) of uuencoded data lines from ``start``.

    The block ends at an ``end`` line, or at the end of the text when the message was cut off;
    None when the lines from ``start`` are not uuencoded data.
    """
    size = 0
    index = start
    while index < len(lines):
        line = lines[index]
        if line.strip() == "end":
            index += 1
            break
        if not line:
            return None
        length = (ord(line[0]) - 32) & 0x3F
        # A line holds its length, then four characters for every three bytes (some encoders
        # add a checksum character); ordinary text rarely matches that arithmetic.
        if abs(len(line) - 1 - (length + 2) // 3 * 4) > 1:
            return None
        try:
            size += len(binascii.a2b_uu(line))
        except (binascii.Error, ValueError):
            return None
        index += 1
    return (index, size) if size else None


def _extract_uuencoded(text: str) -> tuple[str, tuple[Attachment, ...]]:
    """Remove inline uuencoded files (``begin 644 name`` ... ``end``) from a text.

    Old mailers and some gateways put attachments into the text this way; the text without
    them, and the files as attachments, are returned.
    """
    if "begin " not in text:
        return text, ()
    lines = text.split("\n")
    kept: list[str] = []
    files: list[Attachment] = []
    index = 0
    while index < len(lines):
        begin = _UU_BEGIN_RE.fullmatch(lines[index].rstrip())
        block = _uuencoded_size(lines, index + 1) if begin else None
        if begin is None or block is None:
            kept.append(lines[index])
            index += 1
            continue
        name = _clean_filename(begin.group(1))
        guessed = mimetypes.guess_type(name, strict=False)[0] if name else None
        files.append(Attachment(name, guessed or "application/octet-stream", block[1]))
        index = block[0]
    return "\n".join(kept), tuple(files)


@dataclass(frozen=True, slots=True)
class _Body:
    leaf: _Leaf | None
    full_text: str
    reply_text: str
    html_only: bool
    # Files that were uuencoded inside the body text.
    inline_files: tuple[Attachment, ...] = ()


def _choose_body(leaves: Sequence[_Leaf]) -> _Body:
    """The first non-empty inline text/plain part, else the first non-empty text/html part."""
    candidates = [leaf for leaf in leaves if leaf.disposition != "attachment"]
    for leaf in candidates:
        if leaf.content_type == "text/plain":
            text, files = _extract_uuencoded(_text_of(leaf))
            full = _tidy(text)
            if full:
                return _Body(leaf, full, full, html_only=False, inline_files=files)
    for leaf in candidates:
        if leaf.content_type == "text/html":
            html = _decode_bytes(_payload_bytes(leaf.part), _charset(leaf.part))
            reply, full = _render_html(html)
            if full:
                return _Body(leaf, full, reply, html_only=True)
    return _Body(None, "", "", html_only=False)


# --------------------------------------------------------------------------------------------
# HTML to text
# --------------------------------------------------------------------------------------------

_SKIP_TAGS: Final = frozenset(
    {"script", "style", "head", "title", "template", "noscript", "svg", "math", "object"}
)
_BLOCK_TAGS: Final = frozenset(
    {
        "address", "article", "aside", "blockquote", "caption", "center", "dd", "details",
        "dialog", "dir", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer",
        "form", "header", "hgroup", "hr", "legend", "li", "main", "menu", "nav", "ol", "pre",
        "section", "summary", "table", "tbody", "tfoot", "thead", "tr", "ul",
    }
)  # fmt: skip
_PARAGRAPH_TAGS: Final = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6"})
_PRE_TAGS: Final = frozenset({"pre", "textarea", "listing", "plaintext", "xmp"})
_CELL_TAGS: Final = frozenset({"td", "th"})
_QUOTE_CLASSES: Final = frozenset(
    {"gmail_quote", "gmail_quote_container", "yahoo_quoted", "moz-cite-prefix"}
)
_HISTORY_IDS: Final = frozenset({"divrplyfwdmsg", "appendonsend"})
_XML_DECLARATION_RE: Final = re.compile(r"^\s*<\?xml[^>]*>")
_CRUDE_BREAK_RE: Final = re.compile(
    r"<\s*(?:br|/?p|/?div|/?li|/?tr|/?h[1-6]|/?ul|/?ol|/?table|/?blockquote)\b[^<>]*>",
    re.IGNORECASE,
)
_CRUDE_TAG_RE: Final = re.compile(r"<[^<>]*>")


class _TextSink:
    """Accumulates rendered text, turning requested line breaks into newlines lazily."""

    __slots__ = ("_at_line_start", "_last_space", "_parts", "_pending")

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._pending = 0
        self._at_line_start = True
        self._last_space = False

    def text(self, text: str, *, pre: bool) -> None:
        if pre:
            text = _normalise_newlines(text)
        else:
            hard_space = "\xa0" in text
            text = _WHITESPACE_RE.sub(" ", text)
            if self._at_line_start or self._pending or self._last_space:
                text = text.lstrip(" ")
            if not text and hard_space:
                # A non-breaking space keeps its line, e.g. Outlook's <p>&nbsp;</p> blank lines.
                self._flush_pending()
                self._at_line_start = False
                self._last_space = True
        if not text:
            return
        self._flush_pending()
        self._parts.append(text)
        self._at_line_start = text.endswith("\n")
        self._last_space = text.endswith(" ")

    def _flush_pending(self) -> None:
        if self._pending and self._parts:
            self._parts.append("\n" * self._pending)
        self._pending = 0

    def block_break(self, newlines: int) -> None:
        """Ensure at least ``newlines`` line breaks before the next text."""
        self._pending = max(self._pending, newlines)

    def line_break(self) -> None:
        """Add one line break (``<br>``)."""
        self._pending += 1

    def result(self) -> str:
        return _tidy("".join(self._parts))


@dataclass(frozen=True, slots=True)
class _Exit:
    newlines: int
    quote: bool
    pre: bool


def _classes(tag: Tag) -> list[str]:
    value = tag.get("class")
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    return [str(item) for item in value]


def _is_quote_container(tag: Tag) -> bool:
    return tag.name == "blockquote" or any(c.lower() in _QUOTE_CLASSES for c in _classes(tag))


def _starts_history(tag: Tag) -> bool:
    value = tag.get("id")
    return isinstance(value, str) and value.strip().lower() in _HISTORY_IDS


def _block_newlines(tag: Tag) -> int:
    if tag.name in _PARAGRAPH_TAGS:
        # Outlook writes every line as <p class=MsoNormal> with no margin: one line each.
        if any(c.lower() == "msonormal" for c in _classes(tag)):
            return 1
        return 2
    return 1 if tag.name in _BLOCK_TAGS else 0


def _limit_html(html: str) -> str:
    html = _XML_DECLARATION_RE.sub("", html[:_MAX_HTML_CHARS], count=1)
    position = -1
    for _ in range(_MAX_HTML_TAGS):
        position = html.find("<", position + 1)
        if position < 0:
            return html
    return html[:position]


def _crude_html_to_text(html: str) -> str:
    text = _CRUDE_BREAK_RE.sub("\n", html)
    text = _html_unescape(_CRUDE_TAG_RE.sub(" ", text))
    lines = (_collapse_whitespace(line) for line in _normalise_newlines(text).split("\n"))
    return _tidy("\n".join(lines))


def _render_html(html: str) -> tuple[str, str]:
    """Render HTML as (text without quoted history, text with everything)."""
    html = _limit_html(html)
    if "<" not in html:
        text = _crude_html_to_text(html)
        return text, text
    try:
        soup = BeautifulSoup(html, "html.parser")
    except (ParserRejectedMarkup, *_HEADER_ERRORS):
        text = _crude_html_to_text(html)
        return text, text
    return _render_tree(soup)


def _render_tree(soup: BeautifulSoup) -> tuple[str, str]:
    reply = _TextSink()
    full = _TextSink()
    in_history = False
    quote_depth = 0
    pre_depth = 0
    work: list[PageElement | _Exit] = [soup]
    while work:
        node = work.pop()
        if isinstance(node, _Exit):
            quote_depth -= node.quote
            pre_depth -= node.pre
            reply.block_break(node.newlines)
            full.block_break(node.newlines)
            continue
        if isinstance(node, NavigableString):
            if isinstance(node, PreformattedString):
                continue
            full.text(str(node), pre=pre_depth > 0)
            if not in_history and not quote_depth:
                reply.text(str(node), pre=pre_depth > 0)
            continue
        if not isinstance(node, Tag) or node.name in _SKIP_TAGS:
            continue
        if _starts_history(node):
            in_history = True
        quoted = in_history or quote_depth > 0
        if node.name == "br":
            reply.line_break()
            full.line_break()
            continue
        newlines = _block_newlines(node)
        reply.block_break(newlines)
        full.block_break(newlines)
        if node.name == "li":
            full.text("- ", pre=False)
            if not quoted:
                reply.text("- ", pre=False)
        elif node.name in _CELL_TAGS:
            full.text(" ", pre=False)
            if not quoted:
                reply.text(" ", pre=False)
        is_quote = _is_quote_container(node)
        is_pre = node.name in _PRE_TAGS
        quote_depth += is_quote
        pre_depth += is_pre
        work.append(_Exit(newlines, is_quote, is_pre))
        work.extend(reversed(node.contents))
    return reply.result(), full.result()


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML body, without quoted reply history.

    Scripts, styles and the document head are dropped; block elements and ``<br>`` become line
    breaks, list items get their own ``- `` lines, entities are decoded, whitespace is collapsed
    within lines and at most one blank line is kept in a row. ``<blockquote>``, Gmail's
    ``div.gmail_quote``, Yahoo's and Thunderbird's quote containers are dropped, and so is
    everything from Outlook's ``#divRplyFwdMsg`` or ``#appendonsend`` onwards. Only the first
    500,000 characters and 20,000 tags are converted.
    """
    return _render_html(html)[0]


# --------------------------------------------------------------------------------------------
# Quoted replies
# --------------------------------------------------------------------------------------------

_QUOTED_LINE_RE: Final = re.compile(r"\s*>")
_ATTRIBUTION_START_RE: Final = re.compile(r"\s*(?:On|Le|Am|El|Op|Il|Em)\s", re.IGNORECASE)
_ATTRIBUTION_VERB_RE: Final = re.compile(
    r"\s(?:wrote|a\s+écrit|schrieb|escribió|schreef|ha\s+scritto|escreveu)(?=[\s:])",
    re.IGNORECASE,
)
_WROTE_END_RE: Final = re.compile(
    r"\s(?:wrote|a\s+écrit|schrieb|escribió|schreef|ha\s+scritto|escreveu)\s*:$",
    re.IGNORECASE,
)
_SEPARATOR_RE: Final = re.compile(
    r"\s*-{2,}\s*(?:"
    r"Original\s+Message|Ursprüngliche\s+Nachricht|Originalnachricht|Message\s+d['\u2019]origine"
    r"|Mensaje\s+original|Oorspronkelijk\s+bericht|Messaggio\s+originale|Mensagem\s+original"
    r"|Forwarded\s+message|Message\s+transféré|Weitergeleitete\s+Nachricht"
    r"|Mensaje\s+reenviado|Doorgestuurd\s+bericht|Messaggio\s+inoltrato"
    r"|Mensagem\s+encaminhada"
    r")\s*-{2,}\s*$"
    r"|\s*(?:Begin\s+forwarded\s+message|Début\s+du\s+message\s+réexpédié"
    r"|Anfang\s+der\s+weitergeleiteten\s+Nachricht)\s*:\s*$",
    re.IGNORECASE,
)
_UNDERSCORE_RULE_RE: Final = re.compile(r"\s*_{10,}\s*$")
_FROM_HEADER_RE: Final = re.compile(
    r"\s*\*?(?:From|De|Von|Van|Da|Fra|Från|Od)\s*:\s*\*?\s*\S", re.IGNORECASE
)
_OTHER_HEADER_RE: Final = re.compile(
    r"\s*\*?(?:Sent|Date|To|Cc|Subject|Envoyé|À|Objet|Gesendet|Datum|An|Betreff|Enviado"
    r"|Enviada|Fecha|Para|Asunto|Verzonden|Aan|Onderwerp|Inviato|Data|A|Oggetto|Assunto)"
    r"\s*:",
    re.IGNORECASE,
)
_HEADER_BLOCK_LOOKAHEAD: Final = 8


@dataclass(frozen=True, slots=True)
class _Lines:
    """Lines of a text with per-line flags computed once."""

    text: list[str]
    blank: list[bool]
    quoted: list[bool]
    header: list[bool]

    @classmethod
    def of(cls, text: str) -> _Lines:
        lines = _normalise_newlines(text).split("\n")
        return cls(
            text=lines,
            blank=[not line.strip() for line in lines],
            quoted=[bool(_QUOTED_LINE_RE.match(line)) for line in lines],
            header=[bool(_OTHER_HEADER_RE.match(line)) for line in lines],
        )

    def next_content(self, start: int) -> int | None:
        for index in range(start, len(self.text)):
            if not self.blank[index]:
                return index
        return None

    def followed_by_quote(self, start: int) -> bool:
        index = self.next_content(start)
        return index is not None and self.quoted[index]


def _is_attribution(line: str) -> bool:
    """ "On <date>, <name> wrote:" and its equivalents in other languages."""
    line = line.rstrip()
    return (
        line.endswith(":")
        and bool(_ATTRIBUTION_START_RE.match(line))
        and bool(_ATTRIBUTION_VERB_RE.search(line))
    )


def _attribution_span(lines: _Lines, index: int) -> int:
    """Number of lines (1 or 2) of an attribution line starting at ``index``; 0 if none."""
    line = lines.text[index]
    if len(line) > _MAX_MARKER_LINE_CHARS or lines.quoted[index] or lines.blank[index]:
        return 0
    if _is_attribution(line):
        return 1
    following = index + 1
    if (
        following < len(lines.text)
        and not lines.blank[following]
        and not lines.quoted[following]
        and len(lines.text[following]) <= _MAX_MARKER_LINE_CHARS
        and _is_attribution(line.rstrip() + " " + lines.text[following].strip())
    ):
        return 2
    if _WROTE_END_RE.search(line.rstrip()) and lines.followed_by_quote(following):
        return 1
    return 0


def _is_header_block(lines: _Lines, index: int) -> bool:
    """An Outlook-style "From: / Sent: / To: / Subject:" block starting at ``index``."""
    if not _FROM_HEADER_RE.match(lines.text[index]):
        return False
    found = 0
    for following in range(index + 1, min(index + 1 + _HEADER_BLOCK_LOOKAHEAD, len(lines.text))):
        if lines.blank[following]:
            break
        found += lines.header[following]
    return found >= 2


def _starts_history_block(lines: _Lines, index: int) -> bool:
    line = lines.text[index]
    if len(line) > _MAX_MARKER_LINE_CHARS or lines.quoted[index] or lines.blank[index]:
        return False
    if _SEPARATOR_RE.match(line) or _is_header_block(lines, index):
        return True
    if _UNDERSCORE_RULE_RE.match(line):
        following = lines.next_content(index + 1)
        return following is not None and bool(_FROM_HEADER_RE.match(lines.text[following]))
    return False


def strip_quoted_reply(text: str) -> str:
    """Remove quoted reply history, keeping the sender's new text.

    Removes ``>``-quoted lines (interleaved answers between them are kept), attribution lines
    such as "On <date>, <name> wrote:" (also wrapped over two lines, and in French, German,
    Spanish, Dutch, Italian and Portuguese), and everything from the first "Original Message"
    or "Forwarded message" separator, Outlook "From:/Sent:/To:/Subject:" header block (also
    localised) or underscore rule followed by "From:". An attribution line that carries a date
    or address and is not followed by quoted lines also starts removed history. The result is
    tidied (trailing spaces, blank-line runs) and never longer than the input.
    """
    lines = _Lines.of(text)
    kept: list[str] = []
    index = 0
    while index < len(lines.text):
        if _starts_history_block(lines, index):
            break
        span = _attribution_span(lines, index)
        if span:
            if lines.followed_by_quote(index + span):
                index += span
                continue
            attribution = " ".join(lines.text[index : index + span])
            if any(ch.isdigit() or ch == "@" for ch in attribution):
                break
        if not lines.quoted[index]:
            kept.append(lines.text[index])
        index += 1
    return _tidy("\n".join(kept))


# --------------------------------------------------------------------------------------------
# Signatures
# --------------------------------------------------------------------------------------------

_SIGNATURE_MAX_LINES: Final = 12
# A block of contact and company lines (a corporate signature, an address block after "--",
# a disclaimer in two languages) may reach this far up.
_LONG_SIGNATURE_MAX_LINES: Final = 30
_CLOSING_WINDOW: Final = 8
_SIGNATURE_LINE_MAX_CHARS: Final = 72
_SIGNATURE_LINE_MAX_WORDS: Final = 9
_CONTACT_LINE_MAX_CHARS: Final = 160
_CONTACT_BLOCK_MIN_LINES: Final = 3

# Device makers, mail apps and carriers that footers such as "Sent via the Samsung Galaxy S9,
# an AT&T 5G Evolution capable smartphone" or "Sent from Samsung Mobile" name. Generic words
# (phone, device) are left out: "Sent via ... phone" may be the customer's own sentence.
_FOOTER_DEVICES: Final = (
    r"(?:iPhone|iPad|iPod|Android|BlackBerry|Samsung|Galaxy|Huawei|Xiaomi|Pixel|Nokia|Motorola"
    r"|HTC|Xperia|OnePlus|Outlook|Yahoo|AOL|Gmail|Proton\s?Mail|Blue\s?Mail|Spark\s+Mail"
    r"|AT&T|Verizon|T-Mobile|Sprint|Vodafone|Telekom|Xfinity|GMX|WEB\.DE|Mail\s+for\s+Windows)"
)
_MOBILE_FOOTER_RE: Final = re.compile(
    r"^\s*(?:"
    r"Sent\s+from\s+my\s.{1,60}|Sent\s+from\s+(?:Outlook|Mail|Yahoo\s+Mail|AOL)\b.{0,60}"
    r"|Sent\s+(?:wirelessly\s+)?(?:from|via|with|using)\s.{0,60}?\b"
    + _FOOTER_DEVICES
    + r"\b.{0,80}"
    r"|Get\s+Outlook\s+for\s.{1,60}|Envoyé\s+de\s+mon\s.{1,60}|Envoyé\s+depuis\s.{1,60}"
    r"|Von\s+meinem\s.{1,60}\sgesendet|Gesendet\s+(?:von|mit)\s.{1,60}"
    r"|Diese\s+Nachricht\s+wurde\s+(?:von|mit)\s.{1,80}\s(?:gesendet|versendet|verschickt)\.?"
    r"|Enviado\s+desde\s+mi\s.{1,60}|Enviado\s+do\s+meu\s.{1,60}"
    r"|Verzonden\s+(?:vanaf|met)\s+mijn\s.{1,60}|Verstuurd\s+vanaf\s+mijn\s.{1,60}"
    r"|Inviato\s+da(?:l\s+mio)?\s.{1,60}"
    r")\s*$",
    re.IGNORECASE,
)
_GRUESSE: Final = r"gr(?:ü|ue|u)(?:ß|ss)"
_CLOSING_RE: Final = re.compile(
    r"^\s*(?i:"
    # English
    r"(?:with\s+)?(?:(?:best|kind|kindest|warm|warmest|many|sincere|friendly)\s+)?"
    r"(?:regards|wishes|greetings|thanks)"
    r"|thanks\s+(?:and|&)\s+(?:best\s+|kind\s+|warm\s+)?regards"
    r"|thanks(?:\s+(?:again|so\s+much|a\s+lot|in\s+advance))?"
    r"|thank\s+you(?:\s+(?:again|so\s+much|very\s+much|in\s+advance))?"
    r"|cheers|sincerely(?:\s+yours)?|respectfully(?:\s+yours)?|cordially|take\s+care"
    r"|yours\s+(?:sincerely|truly|faithfully|respectfully)|best|all\s+the\s+best"
    # French
    r"|(?:bien\s+)?cordialement|bien\s+à\s+vous|amicalement|respectueusement"
    r"|(?:sincères|meilleures|cordiales|bien\s+cordiales)\s+salutations"
    r"|merci(?:\s+beaucoup|\s+d['\u2019]avance)?"
    # German
    rf"|mit\s+(?:freundlichen|besten|herzlichen|lieben|vielen)\s+{_GRUESSE}en"
    rf"|(?:viele|beste|liebe|herzliche|freundliche|schöne)\s+{_GRUESSE}e|mfg"
    # Spanish
    r"|(?:un\s+)?(?:cordial\s+)?saludos?(?:\s+cordiales)?|atentamente|cordialmente"
    r"|(?:muchas\s+)?gracias"
    # Italian
    r"|(?:cordiali|distinti)\s+saluti|saluti|un\s+(?:cordiale\s+)?saluto|grazie(?:\s+mille)?"
    # Dutch
    r"|(?:met\s+)?(?:vriendelijke|hartelijke)\s+groet(?:en)?|met\s+groet|groeten"
    # Portuguese
    r"|atenciosamente|(?:com\s+os\s+)?(?:melhores\s+)?cumprimentos|abraços|obrigad[oa]"
    # Nordic, Polish, Czech
    r"|med\s+(?:vänlig|venlig|vennlig)\s+(?:hälsning|hilsen)|vänliga\s+hälsningar"
    r"|z\s+poważaniem|pozdrawiam|s\s+pozdravem"
    r")"
    # Either the closing alone, or the closing, a comma and a capitalised name of 1-3 words.
    r"(?:\s*[,.!]*|\s*,\s*[A-ZÀ-Þ][\w.'\u2019-]*(?:\s+[A-ZÀ-Þ][\w.'\u2019-]*){0,2})"
    r"\s*$"
)
_DISCLAIMER_START_RE: Final = re.compile(
    r"^\s*(?:"
    r"(?:CONFIDENTIALITY|LEGAL|IMPORTANT)\s+NOTICE|DISCLAIMER|CONFIDENTIAL\b"
    r"|This\s+(?:e-?mail|message|communication|transmission)\b"
    r"|The\s+(?:information|contents?)\s+(?:contained\s+)?(?:in|of)\s+this\s+(?:e-?mail|message)\b"
    r"|Vertraulichkeitshinweis|Haftungsausschluss|Rechtlicher\s+Hinweis"
    r"|Diese\s+(?:E-?Mail|Nachricht)\b|Der\s+Inhalt\s+dieser\s+(?:E-?Mail|Nachricht)\b"
    r"|Die\s+(?:in\s+dieser\s+(?:E-?Mail|Nachricht)\s+enthaltenen\s+)?Informationen\b"
    r"|Avis\s+de\s+confidentialit|Avertissement|Ce\s+(?:message|courriel|e-?mail)\b"
    r"|Les\s+informations\s+contenues\b"
    r"|Aviso\s+(?:de\s+confidencialidad|legal)|Este\s+(?:mensaje|correo|e-?mail)\b"
    r"|La\s+informaci[óo]n\s+contenida\b"
    r"|Avviso\s+di\s+riservatezza|Questo\s+messaggio\b|Questa\s+e-?mail\b"
    r"|Il\s+presente\s+messaggio\b|Le\s+informazioni\s+contenute\b"
    r"|Dit\s+(?:e-?mail)?bericht\b|Dit\s+e-?mail\b|De\s+informatie\s+(?:verzonden\s+)?(?:in|met)\b"
    r"|Aviso\s+de\s+confidencialidade|Esta\s+mensagem\b|As\s+informa[çc][õo]es\s+contidas\b"
    r")",
    re.IGNORECASE,
)
# A disclaimer says that the message is confidential and what to do if you are not its
# recipient; a customer's last paragraph mentioning confidentiality rarely says both.
_DISCLAIMER_SECRECY_RE: Final = re.compile(
    r"confiden|vertraulich|riservat|vertrouwelijk|privileg", re.IGNORECASE
)
_DISCLAIMER_RECIPIENT_RE: Final = re.compile(
    r"intended|addressee|recipient|in\s+error|delete|empfänger|adressat|irrtümlich|destinatai"
    r"|destinatari|erreur|errore|error|geadresseerde|abusievelijk|vergissing",
    re.IGNORECASE,
)
# A line of a corporate signature: phone, fax, e-mail, web, company form, registration,
# postcode or street.
_CONTACT_LINE_RE: Final = re.compile(
    r"\b(?:tel|tél|phone|telefon|fon|fax|mobile?|mob|cell|handy|cellulare|móvil|telemóvel"
    r"|e-?mail|web)\b|^\s*[TFMEW]\s*:"
    r"|https?://|www\.|\w@\w|\+\d[\d\s().\/-]{6,}\d"
    r"|\b(?:GmbH|AG|KG|Ltd|Limited|Inc|LLC|PLC|LLP|SAS|SARL|S\.?r\.?l|S\.?p\.?A|S\.?A|B\.?V|N\.?V"
    r"|Lda|Oy|AB|ApS|A/S)\b"
    r"|\bregist|\bvat\b|\bust-?id|\bhr[ab]\b|amtsgericht|geschäftsführ|managing\s+director"
    r"|company\s+(?:no|number)|p\.?\s?iva|partita\s+iva|\bsiret\b|\brcs\b|\bnipc?\b|\bcif\b"
    r"|\bkvk\b|capital\s+soci|share\s+capital"
    r"|\b\d{4,5}\s+[^\W\d]|\b\d{4}-\d{3}\b|\b[A-Z]{1,2}\d[A-Z\d]?\s+\d[A-Z]{2}\b"
    r"|\b\d+[a-z]?,?\s+[\w\s]{0,40}\b(?:street|st|road|rd|avenue|ave|lane|way|drive|square)\b"
    r"|\b(?:via|rua|calle|avenida|rue|avenue|piazza|plaza|unit)\s|stra(?:ß|ss)e\s*\d|\bstr\.\s*\d",
    re.IGNORECASE,
)
_SIGNATURE_DELIMITER: Final = "-- "


def _has_content(lines: Sequence[str]) -> bool:
    return any(_remove_invisible(line).strip() for line in lines)


def _trim_trailing_blank(lines: list[str], end: int) -> int:
    while end > 0 and not lines[end - 1].strip():
        end -= 1
    return end


def _is_contact_line(line: str) -> bool:
    return len(line) <= _CONTACT_LINE_MAX_CHARS and _CONTACT_LINE_RE.search(line) is not None


def _is_contact_block(lines: Sequence[str]) -> bool:
    """Short lines of which at least three, and at least a third, are contact lines."""
    content = [line.strip() for line in lines if line.strip()]
    contact = sum(_is_contact_line(line) for line in content)
    return (
        contact >= _CONTACT_BLOCK_MIN_LINES
        and contact * 3 >= len(content)
        and all(_is_signature_line(line) or _is_contact_line(line) for line in content)
    )


def _cut_at_delimiter(lines: list[str], end: int, floor: int, wide_floor: int) -> int:
    """Cut at the last "-- " line (anywhere) or bare "--" line (within the last lines).

    A bare "--" may be further up when the lines after it are a contact block.
    """
    for index in range(end - 1, -1, -1):
        line = lines[index]
        bare = line.strip() == "--"
        if (
            line == _SIGNATURE_DELIMITER
            or (bare and index >= floor)
            or (bare and index >= wide_floor and _is_contact_block(lines[index + 1 : end]))
        ):
            return index if _has_content(lines[:index]) else end
    return end


def _is_disclaimer(paragraph: str) -> bool:
    return (
        _DISCLAIMER_START_RE.match(paragraph) is not None
        and _DISCLAIMER_SECRECY_RE.search(paragraph) is not None
        and _DISCLAIMER_RECIPIENT_RE.search(paragraph) is not None
    )


def _cut_disclaimer(lines: list[str], end: int, floor: int, wide_floor: int) -> int:
    """Cut trailing confidentiality paragraphs (one per language, say)."""
    while True:
        start = end
        while start > wide_floor and lines[start - 1].strip():
            start -= 1
        if start >= end or (start == wide_floor and wide_floor > 0 and lines[start - 1].strip()):
            return end
        if not _is_disclaimer(" ".join(lines[start:end])) or not _has_content(lines[:start]):
            return end
        end = _trim_trailing_blank(lines, start)


def _is_signature_line(line: str) -> bool:
    stripped = line.strip()
    return (
        len(stripped) <= _SIGNATURE_LINE_MAX_CHARS
        and len(stripped.split()) <= _SIGNATURE_LINE_MAX_WORDS
        and not stripped.endswith(("?", ":"))
    )


def _cut_mobile_footer(lines: list[str], end: int, floor: int, wide_floor: int) -> int:
    for index in range(floor, end):
        line = lines[index]
        if (
            len(line) <= _MAX_MARKER_LINE_CHARS
            and _MOBILE_FOOTER_RE.match(line)
            and all(_is_signature_line(rest) for rest in lines[index + 1 : end])
        ):
            return index if _has_content(lines[:index]) else end
    return end


def _is_closing(line: str) -> bool:
    return len(line) <= _MAX_MARKER_LINE_CHARS and _CLOSING_RE.match(line) is not None


def _cut_closing(lines: list[str], end: int, floor: int, wide_floor: int) -> int:
    """Cut a trailing block that starts with a closing such as "Best regards,".

    The closing is within the last eight non-empty lines and followed by short lines only, or
    further up and followed by a contact block (a corporate signature).
    """
    content = [index for index in range(floor, end) if lines[index].strip()]
    for index in content[-_CLOSING_WINDOW:]:
        if _is_closing(lines[index]) and all(
            _is_signature_line(rest) for rest in lines[index + 1 : end]
        ):
            return index if _has_content(lines[:index]) else end
    for index in range(wide_floor, end):
        if _is_closing(lines[index]) and _is_contact_block(lines[index + 1 : end]):
            return index if _has_content(lines[:index]) else end
    return end


def strip_signature(text: str) -> str:
    """Remove a trailing signature block, conservatively.

    Removes, in order: everything from the last standard "-- " delimiter line (a bare "--"
    only within the last 12 lines, or the last 30 when a contact block follows it); trailing
    confidentiality paragraphs (English, German, French, Spanish, Italian, Dutch, Portuguese)
    that say both that the message is confidential and what a wrong recipient should do; a
    mobile footer such as "Sent from my iPhone" or "Sent via the Samsung Galaxy, an AT&T
    smartphone"; and a trailing block that starts with a closing ("With kind regards,",
    "Cordiali saluti", "Mit freundlichen Grüßen", ...) within the last eight non-empty lines
    and continues with short lines only (name, title, phone, company, URL). A closing further
    up, within the last 30 lines, starts a removed block only when a contact block follows it
    (phone, e-mail, web, company form, registration, postcode or street lines: at least three
    and at least a third of them). Footers and closings never reach above the last 12 lines
    left after the delimiter cut, except as just said, and nothing is removed when that would
    leave no text. The result is tidied and never longer than the input.
    """
    lines = _normalise_newlines(text).split("\n")
    end = _trim_trailing_blank(lines, len(lines))
    end = _trim_trailing_blank(
        lines,
        _cut_at_delimiter(
            lines,
            end,
            max(0, end - _SIGNATURE_MAX_LINES),
            max(0, end - _LONG_SIGNATURE_MAX_LINES),
        ),
    )
    floor = max(0, end - _SIGNATURE_MAX_LINES)
    wide_floor = max(0, end - _LONG_SIGNATURE_MAX_LINES)
    for cut in (_cut_disclaimer, _cut_mobile_footer, _cut_closing):
        end = _trim_trailing_blank(lines, cut(lines, end, floor, wide_floor))
        floor = min(floor, end)
        wide_floor = min(wide_floor, end)
    return _tidy("\n".join(lines[:end]))


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def _customer_text(body: _Body) -> str:
    text = _tidy(strip_signature(strip_quoted_reply(_bounded_text(body.reply_text))))
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
    policy = _TolerantPolicy(header_cache={})
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

    senders = _parse_addresses(_raw_headers(msg, "from", limit=_MAX_ADDRESS_HEADER_CHARS))
    if not senders:
        raise EmailParseError("missing From address")
    sender_name, sender_address = senders[0]

    leaves = _leaves(msg)
    body = _choose_body(leaves)
    if not body.full_text:
        raise EmailParseError("message has no text content")
    text = _truncate(_customer_text(body), max_text_chars)

    attachments: list[Attachment] = []
    for leaf in leaves:
        if leaf is body.leaf:
            attachments.extend(body.inline_files)
        elif _is_attachment(leaf):
            attachments.append(Attachment(leaf.filename, leaf.content_type, _part_size(leaf)))
    recipients = _parse_addresses(
        _raw_headers(msg, "to", limit=_MAX_ADDRESS_HEADER_CHARS)
        + _raw_headers(msg, "cc", limit=_MAX_ADDRESS_HEADER_CHARS)
    )
    subjects = _raw_headers(msg, "subject")
    subject = _decoded_header(subjects[0]) if subjects else None
    message_ids = _message_ids(_first_header(msg, "message-id"), single=True)
    in_reply_to = _message_ids(_first_header(msg, "in-reply-to"), single=False)
    references = [
        ref
        for value in _raw_headers(msg, "references")
        for ref in _message_ids(_header_text(value), single=False)
    ]

    return ParsedEmail(
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=_unique(references),
        sender_address=sender_address,
        sender_name=sender_name,
        to=_unique(address for _, address in recipients),
        subject=subject or None,
        date=_parse_date(_first_header(msg, "date")),
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
