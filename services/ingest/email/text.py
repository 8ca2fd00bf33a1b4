"""Text clean-up and charset decoding shared by the e-mail modules; none of it raises."""

from __future__ import annotations

import encodings
import pkgutil
import re
from encodings.aliases import aliases as _CODEC_ALIASES
from typing import Final

# --------------------------------------------------------------------------------------------
# Text clean-up
# --------------------------------------------------------------------------------------------

_INVISIBLE_RE: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\ufeff]")
_SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")
_MANY_NEWLINES_RE: Final = re.compile(r"\n{3,}")
WHITESPACE_RE: Final = re.compile(r"\s+")


def normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def remove_invisible(text: str) -> str:
    """Drop control and zero-width characters; replace lone surrogates with U+FFFD."""
    text = _INVISIBLE_RE.sub("", text)
    return _SURROGATE_RE.sub("\ufffd", text)


def tidy(text: str) -> str:
    """Normalise line endings, strip trailing spaces, allow one blank line in a row, strip."""
    text = remove_invisible(normalise_newlines(text))
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _MANY_NEWLINES_RE.sub("\n\n", text).strip()


def collapse_whitespace(text: str) -> str:
    return WHITESPACE_RE.sub(" ", remove_invisible(text)).strip()


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


ESCAPED_BYTE_RE: Final = re.compile("[\udc80-\udcff]")
_NON_ASCII_RE: Final = re.compile("[^\x00-\x7f]")


def _mostly_utf8(data: bytes) -> bool:
    """Whether the valid UTF-8 sequences in ``data`` are at least as many as the invalid bytes.

    Text in a single-byte charset (Latin-1, cp1252) is almost never valid UTF-8, so its
    non-ASCII bytes are all invalid; UTF-8 text with a stray byte has valid sequences around it.
    """
    text = data.decode("utf-8", "surrogateescape")
    invalid = len(ESCAPED_BYTE_RE.findall(text))
    return invalid <= len(_NON_ASCII_RE.findall(text)) - invalid


def decode_bytes(data: bytes, charset: str | None) -> str:
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


def to_bytes(text: str) -> bytes:
    """Recover the original bytes of a string decoded with ``surrogateescape``."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")
