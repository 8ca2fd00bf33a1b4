"""Turn raw RFC 822 e-mail bytes into clean customer text plus the metadata ingest needs.

Contact-centre platforms deliver customer e-mails as raw ``message/rfc822`` bytes. This module
parses them with the standard library :mod:`email` package and extracts:

* threading metadata (Message-ID, In-Reply-To, References), sender, recipients, subject, date;
* the body text, preferring the first ``text/plain`` part and falling back to the first
  ``text/html`` part converted to text;
* the customer's *new* text, with quoted reply history and the signature removed;
* a summary (name, type, size) of every attachment, never the payload itself.

:func:`parse_email` never raises anything but :class:`EmailParseError`, whatever the input
bytes: malformed headers, broken transfer encodings, unknown or wrong charsets and absurd MIME
structures degrade to a best-effort result or a short, client-safe error reason.
"""

from __future__ import annotations

import base64
import binascii
import email.errors
import encodings
import io
import pkgutil
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import EmailPolicy, compat32
from email.utils import getaddresses, parsedate_to_datetime
from encodings.aliases import aliases as _CODEC_ALIASES
from html import unescape as _html_unescape
from typing import TYPE_CHECKING, Any, Final

from bs4 import BeautifulSoup
from bs4.element import NavigableString, PageElement, PreformattedString, Tag
from bs4.exceptions import ParserRejectedMarkup

__all__ = [
    "Attachment",
    "EmailParseError",
    "ParsedEmail",
    "html_to_text",
    "parse_email",
    "strip_quoted_reply",
    "strip_signature",
]

DEFAULT_MAX_BYTES: Final = 2 * 1024 * 1024
MAX_NESTING_DEPTH: Final = 50
MAX_PARTS: Final = 500

# The standard MIME parser checks every line against every open multipart boundary. Input
# whose boundary declarations times lines exceeds this is rejected before parsing.
_MAX_STRUCTURE_WORK: Final = 4_000_000
# HTML beyond these limits is not converted: customer text sits at the top of a message, and
# the limits bound the time spent on adversarial markup.
_MAX_HTML_CHARS: Final = 500_000
_MAX_HTML_TAGS: Final = 20_000
# Address headers beyond this length are truncated before parsing.
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
    """The parts of an e-mail that the triage service uses."""

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


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset, else UTF-8, else cp1252, else Latin-1; never fails."""
    declared = _codec_for(charset)
    candidates = ((declared,) if declared else ()) + _FALLBACK_CODECS
    for codec in candidates:
        try:
            return data.decode(codec)
        except (LookupError, ValueError, TypeError):
            continue
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
    return binascii.a2b_qp(text.encode("utf-8", "replace"), header=True)


def _decode_rfc2047(value: str) -> str:
    """Decode RFC 2047 encoded words; adjacent words in one charset are joined before decoding."""
    if "=?" not in value:
        return value
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

    for match in _ENCODED_WORD_RE.finditer(value):
        between = value[position : match.start()]
        if pending_charset is None or between.strip():
            flush()
            out.append(between)
        position = match.end()
        charset = match.group(1).split("*", 1)[0].lower()
        data = _encoded_word_bytes(match.group(2), match.group(3))
        if data is None:
            flush()
            out.append(match.group(0))
            continue
        if charset != pending_charset:
            flush()
            pending_charset = charset
        pending.extend(data)
    flush()
    out.append(value[position:])
    return "".join(out)


def _header_text(raw: str) -> str:
    """A raw header value as text: 8-bit bytes decoded, folding undone, controls removed."""
    text = _decode_bytes(_to_bytes(raw), None)
    return _remove_invisible(_LINE_BREAK_RE.sub(" ", text))


def _raw_headers(msg: Message, name: str) -> list[str]:
    wanted = name.lower()
    return [str(value) for key, value in msg.raw_items() if key.lower() == wanted]


def _first_header(msg: Message, name: str) -> str | None:
    values = _raw_headers(msg, name)
    return _header_text(values[0]) if values else None


if TYPE_CHECKING:
    _EmailPolicyBase = EmailPolicy[EmailMessage]
else:
    _EmailPolicyBase = EmailPolicy


class _TolerantPolicy(_EmailPolicyBase):
    """The default e-mail policy, except that header access never raises.

    A header value that the structured header parser rejects is returned as plain text, so
    that ``get_content_type()``, ``get_filename()`` and friends degrade instead of failing.
    Over-long values are truncated first.
    """

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if isinstance(value, str) and len(value) > _MAX_PART_HEADER_CHARS:
            value = value[:_MAX_PART_HEADER_CHARS]
        try:
            return super().header_fetch_parse(name, value)
        except _HEADER_ERRORS:
            return _header_text(str(value))


_POLICY: Final = _TolerantPolicy()


def _new_parser() -> BytesParser[EmailMessage]:
    return BytesParser(policy=_POLICY)


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


def _display_name(name: str) -> str | None:
    decoded = _collapse_whitespace(_decode_rfc2047(name))
    if len(decoded) >= 2 and decoded[0] == decoded[-1] and decoded[0] in "'\"":
        decoded = decoded[1:-1].strip()
    return decoded or None


def _parse_addresses(values: Sequence[str]) -> list[tuple[str | None, str]]:
    """Valid (display name, lower-cased address) pairs from address header values, in order."""
    texts = [_header_text(value)[:_MAX_ADDRESS_HEADER_CHARS] for value in values]
    try:
        pairs = getaddresses(texts)
    except (RecursionError, ValueError, TypeError, IndexError):
        pairs = []
    result: list[tuple[str | None, str]] = []
    for name, address in pairs:
        address = address.strip().lower()
        if _valid_address(address):
            result.append((_display_name(name), address))
    if not result:
        for text in texts:
            for token in _ADDRESS_DELIMITERS_RE.split(text):
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


def _text_of(leaf: _Leaf) -> str:
    """The decoded text of a text/plain part, with flowed lines joined."""
    text = _normalise_newlines(_decode_bytes(_payload_bytes(leaf.part), _charset(leaf.part)))
    if _param(leaf.part, "format") == "flowed":
        text = _unflow(text, delsp=_param(leaf.part, "delsp") == "yes")
    return text


@dataclass(frozen=True, slots=True)
class _Body:
    leaf: _Leaf | None
    full_text: str
    reply_text: str
    html_only: bool


def _choose_body(leaves: Sequence[_Leaf]) -> _Body:
    """The first non-empty inline text/plain part, else the first non-empty text/html part."""
    candidates = [leaf for leaf in leaves if leaf.disposition != "attachment"]
    for leaf in candidates:
        if leaf.content_type == "text/plain":
            full = _tidy(_text_of(leaf))
            if full:
                return _Body(leaf, full, full, html_only=False)
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
_CLOSING_WINDOW: Final = 8
_SIGNATURE_LINE_MAX_CHARS: Final = 72
_SIGNATURE_LINE_MAX_WORDS: Final = 9

_MOBILE_FOOTER_RE: Final = re.compile(
    r"^\s*(?:"
    r"Sent\s+from\s+my\s.{1,60}|Sent\s+from\s+(?:Outlook|Mail|Yahoo\s+Mail|AOL)\b.{0,60}"
    r"|Get\s+Outlook\s+for\s.{1,60}|Envoyé\s+de\s+mon\s.{1,60}|Envoyé\s+depuis\s.{1,60}"
    r"|Von\s+meinem\s.{1,60}\sgesendet|Gesendet\s+von\s+meinem\s.{1,60}"
    r"|Enviado\s+desde\s+mi\s.{1,60}|Enviado\s+do\s+meu\s.{1,60}"
    r"|Verzonden\s+(?:vanaf|met)\s+mijn\s.{1,60}|Verstuurd\s+vanaf\s+mijn\s.{1,60}"
    r"|Inviato\s+da(?:l\s+mio)?\s.{1,60}"
    r")\s*$",
    re.IGNORECASE,
)
_CLOSING_RE: Final = re.compile(
    r"^\s*(?i:"
    r"(?:best|kind|kindest|warm|warmest|many|with)\s+(?:regards|wishes|thanks)|regards"
    r"|thanks\s+(?:and|&)\s+(?:best\s+|kind\s+)?regards"
    r"|thanks(?:\s+(?:again|so\s+much|a\s+lot|in\s+advance))?"
    r"|thank\s+you(?:\s+(?:again|so\s+much|very\s+much|in\s+advance))?"
    r"|cheers|sincerely|yours\s+(?:sincerely|truly|faithfully)|best|all\s+the\s+best"
    r"|cordialement|bien\s+cordialement|bien\s+à\s+vous|merci(?:\s+beaucoup|\s+d['\u2019]avance)?"
    r"|mit\s+freundlichen\s+gr(?:ü|ue|u)(?:ß|ss)en|(?:viele|beste|liebe)\s+gr(?:ü|ue|u)(?:ß|ss)e"
    r"|freundliche\s+gr(?:ü|ue|u)(?:ß|ss)e|mfg|saludos(?:\s+cordiales)?|un\s+saludo"
    r"|atentamente|gracias|met\s+vriendelijke\s+groet(?:en)?|groeten|cordiali\s+saluti"
    r"|distinti\s+saluti|saluti|grazie|atenciosamente|obrigad[oa]|abraços"
    r")"
    # Either the closing alone, or the closing, a comma and a capitalised name of 1-3 words.
    r"(?:\s*[,.!]*|\s*,\s*[A-ZÀ-Þ][\w.'\u2019-]*(?:\s+[A-ZÀ-Þ][\w.'\u2019-]*){0,2})"
    r"\s*$"
)
_DISCLAIMER_START_RE: Final = re.compile(
    r"^\s*(?:CONFIDENTIALITY\s+NOTICE|DISCLAIMER|This\s+(?:e-?mail|message|communication)\b"
    r"|The\s+information\s+(?:contained\s+)?in\s+this\s+(?:e-?mail|message)\b)",
    re.IGNORECASE,
)
_SIGNATURE_DELIMITER: Final = "-- "


def _has_content(lines: Sequence[str]) -> bool:
    return any(_remove_invisible(line).strip() for line in lines)


def _trim_trailing_blank(lines: list[str], end: int) -> int:
    while end > 0 and not lines[end - 1].strip():
        end -= 1
    return end


def _cut_at_delimiter(lines: list[str], end: int, floor: int) -> int:
    """Cut at the last "-- " line (anywhere) or bare "--" line (within the last lines)."""
    for index in range(end - 1, -1, -1):
        line = lines[index]
        if line == _SIGNATURE_DELIMITER or (index >= floor and line.strip() == "--"):
            return index if _has_content(lines[:index]) else end
    return end


def _cut_disclaimer(lines: list[str], end: int, floor: int) -> int:
    """Cut a trailing confidentiality paragraph."""
    start = end
    while start > floor and lines[start - 1].strip():
        start -= 1
    if start >= end or (start == floor and floor > 0 and lines[floor - 1].strip()):
        return end
    paragraph = " ".join(lines[start:end])
    if _DISCLAIMER_START_RE.match(paragraph) and "confidential" in paragraph.lower():
        return start if _has_content(lines[:start]) else end
    return end


def _is_signature_line(line: str) -> bool:
    stripped = line.strip()
    return (
        len(stripped) <= _SIGNATURE_LINE_MAX_CHARS
        and len(stripped.split()) <= _SIGNATURE_LINE_MAX_WORDS
        and not stripped.endswith(("?", ":"))
    )


def _cut_mobile_footer(lines: list[str], end: int, floor: int) -> int:
    for index in range(floor, end):
        line = lines[index]
        if (
            len(line) <= _MAX_MARKER_LINE_CHARS
            and _MOBILE_FOOTER_RE.match(line)
            and all(_is_signature_line(rest) for rest in lines[index + 1 : end])
        ):
            return index if _has_content(lines[:index]) else end
    return end


def _cut_closing(lines: list[str], end: int, floor: int) -> int:
    """Cut a trailing block that starts with a closing such as "Best regards,"."""
    content = [index for index in range(floor, end) if lines[index].strip()]
    for index in content[-_CLOSING_WINDOW:]:
        line = lines[index]
        if len(line) > _MAX_MARKER_LINE_CHARS or not _CLOSING_RE.match(line):
            continue
        if all(_is_signature_line(rest) for rest in lines[index + 1 : end]):
            return index if _has_content(lines[:index]) else end
    return end


def strip_signature(text: str) -> str:
    """Remove a trailing signature block, conservatively.

    Removes, in order: everything from the last standard "-- " delimiter line (a bare "--"
    only within the last 12 lines); a trailing confidentiality paragraph; a mobile footer such
    as "Sent from my iPhone"; and a trailing block that starts with a closing ("Best regards,",
    "Thanks,", "Cordialement,", ...) within the last eight non-empty lines and continues with
    short lines only (name, title, phone, company, URL). These last three never reach above
    the last 12 lines left after the delimiter cut, and nothing is removed when that would
    leave no text. The result is tidied and never longer than the input.
    """
    lines = _normalise_newlines(text).split("\n")
    end = _trim_trailing_blank(lines, len(lines))
    end = _trim_trailing_blank(
        lines, _cut_at_delimiter(lines, end, max(0, end - _SIGNATURE_MAX_LINES))
    )
    floor = max(0, end - _SIGNATURE_MAX_LINES)
    for cut in (_cut_disclaimer, _cut_mobile_footer, _cut_closing):
        end = _trim_trailing_blank(lines, cut(lines, end, floor))
        floor = min(floor, end)
    return _tidy("\n".join(lines[:end]))


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def _customer_text(body: _Body) -> str:
    text = _tidy(strip_signature(strip_quoted_reply(body.reply_text)))
    return text or body.full_text


def _structure_work(data: bytes) -> int:
    """An upper bound on the MIME parser's boundary checks: boundaries declared times lines."""
    boundaries = data.lower().count(b"boundary")
    if boundaries < 2:
        return 0
    return boundaries * max(data.count(b"\n"), data.count(b"\r"))


def _parse(data: bytes) -> ParsedEmail:
    if _structure_work(data) > _MAX_STRUCTURE_WORK:
        raise EmailParseError("message structure is too complex")
    msg = _new_parser().parsebytes(data)

    senders = _parse_addresses(_raw_headers(msg, "from"))
    if not senders:
        raise EmailParseError("missing From address")
    sender_name, sender_address = senders[0]

    leaves = _leaves(msg)
    body = _choose_body(leaves)
    if not body.full_text:
        raise EmailParseError("message has no text content")
    text = _customer_text(body)

    attachments = tuple(
        Attachment(leaf.filename, leaf.content_type, _part_size(leaf))
        for leaf in leaves
        if leaf is not body.leaf and _is_attachment(leaf)
    )
    recipients = _parse_addresses(_raw_headers(msg, "to") + _raw_headers(msg, "cc"))
    subject = _first_header(msg, "subject")
    subject = _collapse_whitespace(_decode_rfc2047(subject)) if subject is not None else None
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
        attachments=attachments,
    )


def parse_email(raw: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ParsedEmail:
    """Parse a raw RFC 822 message into a :class:`ParsedEmail`.

    Raises :class:`EmailParseError`, and nothing else, for input that is not a usable e-mail:
    larger than ``max_bytes``, empty, without a From address, without any text, nested more
    than 50 levels deep, with more than 500 MIME parts, or with so many multipart boundaries
    over so many lines that parsing it would be unreasonably slow.
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise TypeError("raw must be bytes")
    data = bytes(raw)
    if len(data) > max_bytes:
        raise EmailParseError(f"message exceeds {max_bytes} bytes")
    if not data.strip():
        raise EmailParseError("empty message")
    try:
        return _parse(data)
    except EmailParseError:
        raise
    except RecursionError as exc:
        raise EmailParseError("message is nested too deeply") from exc
    except Exception:
        # The internal error is not chained: its message may quote parts of the input.
        raise EmailParseError("message could not be parsed") from None
