"""The MIME structure: the leaf parts within the depth and part limits, their sizes and text,
files uuencoded inside a text, and the choice of the body."""

from __future__ import annotations

import binascii
import io
import mimetypes
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.message import Message
from email.policy import compat32
from typing import Final

from services.ingest.email.headers import HEADER_ERRORS, decode_rfc2047
from services.ingest.email.html_text import render_html
from services.ingest.email.parsed import Attachment, EmailParseError
from services.ingest.email.text import collapse_whitespace, decode_bytes, normalise_newlines, tidy

MAX_NESTING_DEPTH: Final = 50
MAX_PARTS: Final = 500
# The body text is cut to this many characters (at a line break) before flowed-text joining,
# uuencode detection, tidying and quote and signature stripping, whose cost grows with the
# number of lines. It is at least the largest text limit ingest can be configured with.
_MAX_BODY_CHARS: Final = 200_000


# --------------------------------------------------------------------------------------------
# MIME structure
# --------------------------------------------------------------------------------------------

_PART_ERRORS: Final = (*HEADER_ERRORS, IndexError, KeyError)


@dataclass(frozen=True, slots=True)
class Leaf:
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
    decoded = collapse_whitespace(decode_rfc2047(name))
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


def leaf_parts(root: Message) -> list[Leaf]:
    """The leaf parts in document order, enforcing the depth and part-count limits."""
    leaves: list[Leaf] = []
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
            leaves.append(Leaf(part, content_type, _disposition(part), _filename(part)))
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


def part_size(leaf: Leaf) -> int:
    if leaf.content_type.startswith("message/"):
        return _attached_message_size(leaf.part)
    return len(_payload_bytes(leaf.part))


def is_attachment(leaf: Leaf) -> bool:
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


def bounded_text(text: str) -> str:
    """The first :data:`_MAX_BODY_CHARS` characters of a text, cut at a line break if any."""
    if len(text) <= _MAX_BODY_CHARS:
        return text
    cut = text.rfind("\n", 0, _MAX_BODY_CHARS)
    return text[: cut if cut > 0 else _MAX_BODY_CHARS]


def _text_of(leaf: Leaf) -> str:
    """The decoded text of a text/plain part (a bounded prefix), with flowed lines joined."""
    text = decode_bytes(_payload_bytes(leaf.part), _charset(leaf.part))
    text = bounded_text(normalise_newlines(text))
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
class ChosenBody:
    leaf: Leaf | None
    full_text: str
    reply_text: str
    html_only: bool
    # Files that were uuencoded inside the body text.
    inline_files: tuple[Attachment, ...] = ()


def choose_body(leaves: Sequence[Leaf]) -> ChosenBody:
    """The first non-empty inline text/plain part, else the first non-empty text/html part."""
    candidates = [leaf for leaf in leaves if leaf.disposition != "attachment"]
    for leaf in candidates:
        if leaf.content_type == "text/plain":
            text, files = _extract_uuencoded(_text_of(leaf))
            full = tidy(text)
            if full:
                return ChosenBody(leaf, full, full, html_only=False, inline_files=files)
    for leaf in candidates:
        if leaf.content_type == "text/html":
            html = decode_bytes(_payload_bytes(leaf.part), _charset(leaf.part))
            reply, full = render_html(html)
            if full:
                return ChosenBody(leaf, full, reply, html_only=True)
    return ChosenBody(None, "", "", html_only=False)
