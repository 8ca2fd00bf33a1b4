"""Header fields: RFC 2047 encoded words, a policy under which header access never raises,
addresses, message ids and dates."""

from __future__ import annotations

import base64
import binascii
import email.errors
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.policy import EmailPolicy
from email.utils import getaddresses, parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Final

from services.ingest.email.text import (
    ESCAPED_BYTE_RE,
    collapse_whitespace,
    decode_bytes,
    remove_invisible,
    to_bytes,
)

# Subject, ids and dates beyond this length are truncated before decoding.
_MAX_HEADER_CHARS: Final = 16 * 1024
# At most this many occurrences of one header field are read.
_MAX_HEADER_VALUES: Final = 100
# Address headers (From, To and Cc together) beyond this length are truncated before parsing.
MAX_ADDRESS_HEADER_CHARS: Final = 64 * 1024
# MIME part headers (Content-Type, Content-Disposition, ...) beyond this length are truncated.
_MAX_PART_HEADER_CHARS: Final = 8 * 1024
_MAX_ADDRESS_CHARS: Final = 320


# --------------------------------------------------------------------------------------------
# Headers
# --------------------------------------------------------------------------------------------

_ENCODED_WORD_RE: Final = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_LINE_BREAK_RE: Final = re.compile(r"[\r\n]+")
HEADER_ERRORS: Final = (
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
    return binascii.a2b_qp(to_bytes(text), header=True)


def decode_rfc2047(value: str) -> str:
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
            out.append(decode_bytes(bytes(pending), pending_charset))
            pending.clear()
            pending_charset = None

    def plain(text: str) -> str:
        return decode_bytes(to_bytes(text), None) if _has_escapes(text) else text

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
    return ESCAPED_BYTE_RE.search(text) is not None


def header_text(raw: str) -> str:
    """A raw header value as text: 8-bit bytes decoded, folding undone, controls removed."""
    text = decode_bytes(to_bytes(raw), None)
    return remove_invisible(_LINE_BREAK_RE.sub(" ", text))


def decoded_header(raw: str) -> str:
    """A raw unstructured header value (subject, display name) as one line of text."""
    return collapse_whitespace(decode_rfc2047(_LINE_BREAK_RE.sub(" ", raw)))


def raw_headers(msg: Message, name: str, *, limit: int = _MAX_HEADER_CHARS) -> list[str]:
    """The first raw values of a header field, each truncated to ``limit`` characters."""
    wanted = name.lower()
    values: list[str] = []
    for key, value in msg.raw_items():
        if key.lower() == wanted:
            values.append(str(value)[:limit])
            if len(values) == _MAX_HEADER_VALUES:
                break
    return values


def first_header(msg: Message, name: str) -> str | None:
    values = raw_headers(msg, name)
    return header_text(values[0]) if values else None


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


class TolerantPolicy(_EmailPolicyBase):
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
        except HEADER_ERRORS:
            return header_text(value)


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
    decoded = decoded_header(name)
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


def parse_addresses(values: Sequence[str]) -> list[tuple[str | None, str]]:
    """Valid (display name, lower-cased address) pairs from raw address header values, in order.

    The values keep their 8-bit bytes as surrogate escapes until the entries are split, so that
    display names are decoded once, with the charset of their encoded words.
    """
    raw = _LINE_BREAK_RE.sub(" ", ", ".join(values))[:MAX_ADDRESS_HEADER_CHARS]
    result: list[tuple[str | None, str]] = []
    for name, raw_address in _raw_pairs(_address_entries(raw)):
        address = header_text(raw_address).strip().lower()
        if _valid_address(address):
            result.append((_display_name(name), address))
    if not result:
        for token in _ADDRESS_DELIMITERS_RE.split(header_text(raw)):
            address = token.lower()
            if _valid_address(address):
                result.append((None, address))
    return result


def unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def parse_message_ids(value: str | None, *, single: bool) -> list[str]:
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


def parse_date(value: str | None) -> datetime | None:
    if not value or not value.strip():
        return None
    try:
        parsed = parsedate_to_datetime(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (TypeError, ValueError, OverflowError, IndexError, AttributeError):
        return None
