"""Facts in a customer message that the router and the agent need.

* :func:`extract_amounts`: sums of money with their ISO 4217 currency (``£49.99``, ``40 euros``,
  ``USD 12.50``, ``49,99 €``, ``$2k``, CFPB-style ``{$100.00}``). A number without a currency
  is not an amount, nor is a number inside a reference or a date.
* :func:`extract_references`: order, account, booking, invoice, ticket and tracking numbers,
  each told by the word before it (``order #A-55812``, ``booking ref QX7T9P``).
* :func:`detect_language`: the ISO 639-1 code of the text and its probability, from the
  bundled ``py3langid`` model restricted to a practical set of languages.
* :func:`extract_facts`: the three together, as a :class:`~services.common.messages.Facts`.

Only the first :data:`SCAN_CHARS` characters are read. No input string makes these raise.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from py3langid.langid import MODEL_FILE, LanguageIdentifier

from services.common.messages import Facts, Money, Reference, ReferenceKind

#: Characters of a message that are read; the rest is ignored.
SCAN_CHARS = 20_000
#: Most amounts and references returned for one message.
MAX_AMOUNTS = 20
MAX_REFERENCES = 20
#: Longest amount text and reference value kept.
MAX_TEXT_CHARS = 64

#: Languages the detector may answer; others are not considered, so that short English texts
#: are not tagged as a rare language.
LANGUAGES: tuple[str, ...] = (
    "en", "fr", "de", "es", "it", "pt", "nl", "sv", "da", "no", "fi", "pl", "cs", "ro", "hu",
    "tr", "el", "ru", "uk", "ar", "he", "hi", "ja", "zh", "ko", "id", "ms", "vi", "th",
)  # fmt: skip

# Amounts -------------------------------------------------------------------------------------

_SPACE = r"[ \u00a0\u202f]"
_NUMBER = (
    r"(?<![0-9.,])"
    r"(?:[0-9]{1,3}(?:[,.][0-9]{3}){1,5}(?:[.,][0-9]{1,2})?|[0-9]{1,12}(?:[.,][0-9]{1,2})?)"
    r"(?![0-9]|[.,][0-9])"
)
_MULTIPLIER = rf"(?:(?:k|m|bn)(?![^\W\d_])|{_SPACE}(?:thousand|million|billion)(?![^\W\d_]))?"
_PREFIX_SYMBOL = r"(?<![^\W\d_])(?:NZ|AU|CA|US|A|C|R)\$|(?<![^\W\d_])Rs\.?|[£€¥₹$]"
_SUFFIX_SYMBOL = r"[£€¥₹$]"
_CODE = r"(?<![^\W\d_])(?i:gbp|usd|eur|jpy|inr|aud|cad|nzd|chf|brl)(?![^\W\d_])"
_SUFFIX_WORD = (
    r"(?i:gbp|usd|eur|jpy|inr|aud|cad|nzd|chf|brl|pounds?(?:\s+sterling)?|sterling|quid"
    r"|dollars?|bucks|euros?|yen|rupees?)(?![^\W\d_])"
)
#: A currency between two numbers belongs to the second: ``2024 £ 40`` is forty pounds.
_NOT_BEFORE_NUMBER = rf"(?!{_SPACE}?[0-9])"
_AMOUNT = re.compile(
    rf"(?P<prefix>{_PREFIX_SYMBOL}){_SPACE}?(?P<number1>{_NUMBER})(?P<mult1>{_MULTIPLIER})"
    rf"|(?P<code>{_CODE}){_SPACE}?(?P<number2>{_NUMBER})(?P<mult2>{_MULTIPLIER})"
    rf"|(?P<number3>{_NUMBER})(?P<mult3>{_MULTIPLIER})"
    rf"(?:(?P<suffix>{_SUFFIX_SYMBOL})|{_SPACE}(?P<spaced>{_SUFFIX_SYMBOL}){_NOT_BEFORE_NUMBER})"
    rf"|(?P<number4>{_NUMBER})(?P<mult4>{_MULTIPLIER}){_SPACE}?(?P<word>{_SUFFIX_WORD})"
    rf"{_NOT_BEFORE_NUMBER}"
)

_CURRENCY = {
    "£": "GBP",
    "€": "EUR",
    "¥": "JPY",
    "₹": "INR",
    "$": "USD",
    "us$": "USD",
    "a$": "AUD",
    "au$": "AUD",
    "c$": "CAD",
    "ca$": "CAD",
    "nz$": "NZD",
    "r$": "BRL",
    "rs": "INR",
    "rs.": "INR",
    "pound": "GBP",
    "pounds": "GBP",
    "sterling": "GBP",
    "quid": "GBP",
    "dollar": "USD",
    "dollars": "USD",
    "bucks": "USD",
    "euro": "EUR",
    "euros": "EUR",
    "yen": "JPY",
    "rupee": "INR",
    "rupees": "INR",
}
_MULTIPLIERS = {
    "": 1.0,
    "k": 1e3,
    "thousand": 1e3,
    "m": 1e6,
    "million": 1e6,
    "bn": 1e9,
    "billion": 1e9,
}
#: Currencies whose amounts are written ``1.500`` for one thousand five hundred.
_DOT_THOUSANDS = frozenset({"EUR", "BRL"})
_THOUSANDS_COMMA = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+")
_DATE = re.compile(
    r"(?<![0-9])(?:[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}|[0-9]{1,2}[-/.][0-9]{1,2}[-/.][0-9]{2,4})"
    r"(?![0-9])"
)

# References ----------------------------------------------------------------------------------

_KEYWORDS = {
    ReferenceKind.ORDER: r"(?:purchase\s)?orders?|p\.?o\.?",
    ReferenceKind.ACCOUNT: (
        r"accounts?|acct|a/c|(?:customer|client|member(?:ship)?|policy|contract)"
        r"\s(?:number|no\b\.?|id\b|ref(?:erence)?\b|#)"
    ),
    ReferenceKind.BOOKING: (
        r"bookings?|reservations?|pnr|confirmation\s(?:number|no\b\.?|code|ref(?:erence)?\b|#)"
    ),
    ReferenceKind.INVOICE: r"invoices?|bill\s(?:number|no\b\.?|ref(?:erence)?\b)|receipt",
    ReferenceKind.TICKET: r"tickets?|cases?|complaints?|incidents?|claims?|service\srequest",
    ReferenceKind.TRACKING: (
        r"tracking|parcels?|consignments?|shipments?|waybill|track\s(?:number|no\b\.?|id\b|code)"
    ),
    ReferenceKind.OTHER: r"ref(?:erence)?",
}
_CONNECTOR = r"(?:ref(?:erence)?|no|nos|number|num|nr|id|code|ending\s(?:in|with))\b\.?"
_VALUE = r"[A-Za-z0-9](?:[A-Za-z0-9]|[-/_](?=[A-Za-z0-9])){0,63}(?![A-Za-z0-9_])(?![-/.,][0-9])"
_REFERENCE = re.compile(
    r"(?<![^\W_])(?:"
    + "|".join(f"(?P<{kind.value}>{pattern})" for kind, pattern in _KEYWORDS.items())
    + r")(?![^\W_])"
    + rf"(?P<connector>(?:\s{{1,3}}+{_CONNECTOR}|\s{{0,3}}+#){{0,3}}+)"
    + r"(?P<link>(?:\s{1,3}+(?:is|was)\b)?+(?:\s{0,3}+[:=\-\u2013])?+)"
    + rf"\s{{0,4}}+#?+\s{{0,2}}+(?P<value>{_VALUE})",
    re.IGNORECASE,
)
_YEAR = re.compile(r"(?:19|20)[0-9]{2}")
_DATE_VALUE = re.compile(r"[0-9]{1,4}[-/][0-9]{1,2}[-/][0-9]{1,4}")
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+[0-9]{1,3}[\s-]?(?:\(0\)[\s-]?)?[0-9]{2,4}[\s-]?[0-9]{3,4}[\s-]?[0-9]{3,4}"
    r"|0[0-9]{4}[\s-]?[0-9]{6}|0[0-9]{3}[\s-]?[0-9]{3}[\s-]?[0-9]{4}"
    r"|0[0-9]{2}[\s-]?[0-9]{4}[\s-]?[0-9]{4}"
    r"|\([0-9]{3}\)[\s-]?[0-9]{3}[\s.-][0-9]{4}|[0-9]{3}[.-][0-9]{3}[.-][0-9]{4}"
    r")(?![0-9])"
)
#: Shortest reference value, with and without a connecting word (``no.``, ``#``, ``:``).
_MIN_VALUE_CHARS = 3
_MIN_BARE_VALUE_CHARS = 4
_CODE_CHARS = range(5, 11)

# Language ------------------------------------------------------------------------------------

_LANGUAGE_NOISE = re.compile(
    r"https?://\S+|www\.\S+|(?<![\w.+-])[\w.+-]{1,64}+@[\w.-]+|(?<!\w)[@#]\w+"
)
_LETTER_WORD = re.compile(r"[^\W\d_]+")
#: Scripts written without spaces between words.
_UNSPACED_SCRIPT = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")
_MIN_WORDS = 2
_MIN_UNSPACED_CHARS = 4


@dataclass(frozen=True, slots=True)
class _Span:
    """Where something was found: ``start`` and ``end`` offsets in the scanned text."""

    start: int
    end: int


class _Spans:
    """Spans in order that do not overlap one another, for quick overlap tests."""

    def __init__(self, spans: Iterable[_Span]) -> None:
        self._spans = list(spans)
        self._starts = [span.start for span in self._spans]

    def overlap(self, span: _Span) -> bool:
        """Whether ``span`` overlaps any of the spans."""
        index = bisect.bisect_left(self._starts, span.end) - 1
        return index >= 0 and self._spans[index].end > span.start


@dataclass(frozen=True, slots=True)
class _AmountFound:
    money: Money
    number: _Span


@dataclass(frozen=True, slots=True)
class _ReferenceFound:
    reference: Reference
    value: _Span


def _parse_number(raw: str, currency: str | None) -> float:
    """The value of a number written with ``,`` or ``.`` as thousands or decimal separators."""
    if "," in raw and "." in raw:
        if raw.rfind(",") > raw.rfind("."):
            return float(raw.replace(".", "").replace(",", "."))
        return float(raw.replace(",", ""))
    if "," in raw:
        if _THOUSANDS_COMMA.fullmatch(raw):
            return float(raw.replace(",", ""))
        return float(raw.replace(",", "."))
    if raw.count(".") > 1:
        return float(raw.replace(".", ""))
    if "." in raw and len(raw) - raw.index(".") == 4 and currency in _DOT_THOUSANDS:
        return float(raw.replace(".", ""))
    return float(raw)


def _currency_of(match: re.Match[str]) -> str | None:
    """The ISO 4217 code of an amount match, from its symbol, code or word."""
    marker = (
        match.group("prefix")
        or match.group("suffix")
        or match.group("spaced")
        or match.group("code")
    )
    if marker is None:
        marker = match.group("word")
    if marker is None:
        return None
    marker = marker.lower()
    if marker.startswith("pound"):
        return "GBP"
    return _CURRENCY.get(marker, marker.upper())


def _amount_candidates(text: str) -> list[_AmountFound]:
    """Every amount in ``text``, in order, before references and dates are taken out."""
    found: list[_AmountFound] = []
    for match in _AMOUNT.finditer(text):
        index = next((i for i in (1, 2, 3, 4) if match.group(f"number{i}") is not None), 1)
        currency = _currency_of(match)
        number = match.group(f"number{index}")
        multiplier = _MULTIPLIERS.get(match.group(f"mult{index}").strip().lower(), 1.0)
        amount = _parse_number(number, currency) * multiplier
        written = match.group(0).strip()
        if not math.isfinite(amount) or len(written) > MAX_TEXT_CHARS:
            continue
        found.append(
            _AmountFound(
                money=Money(amount=amount, currency=currency, text=written),
                number=_Span(match.start(f"number{index}"), match.end(f"number{index}")),
            )
        )
    return found


def _matched_kind(match: re.Match[str]) -> tuple[ReferenceKind, str]:
    """The kind of reference a match names and the keyword as written."""
    for kind in ReferenceKind:
        keyword = match.group(kind.value)
        if keyword is not None:
            return kind, keyword
    return ReferenceKind.OTHER, ""


def _valid_value(value: str, keyword: str, connected: bool) -> bool:
    """Whether ``value`` reads as an identifier rather than a word, year, date or redaction."""
    if len(set(value.upper())) == 1:
        return False
    if any(character.isdigit() for character in value):
        if len(value) < (_MIN_VALUE_CHARS if connected else _MIN_BARE_VALUE_CHARS):
            return False
        return _YEAR.fullmatch(value) is None and _DATE_VALUE.fullmatch(value) is None
    return (
        len(value) in _CODE_CHARS and value.isalnum() and value.isupper() and not keyword.isupper()
    )


def _reference_candidates(text: str, amounts: _Spans, phones: _Spans) -> list[_ReferenceFound]:
    """Every reference in ``text``, in order; numbers that are amounts or phones are left out."""
    found: list[_ReferenceFound] = []
    for match in _REFERENCE.finditer(text):
        kind, keyword = _matched_kind(match)
        value = match.group("value")
        between = text[match.end(kind.value) : match.start("value")]
        connected = bool(match.group("connector").strip()) or any(mark in between for mark in "#:=")
        if not _valid_value(value, keyword, connected):
            continue
        span = _Span(match.start("value"), match.end("value"))
        if phones.overlap(span) or (value.isdigit() and amounts.overlap(span)):
            continue
        found.append(_ReferenceFound(Reference(kind=kind, value=value), span))
    return found


def _scan(text: str) -> tuple[tuple[Money, ...], tuple[Reference, ...]]:
    """The amounts and references of ``text``, each de-duplicated, in order and capped."""
    scanned = text[:SCAN_CHARS]
    candidates = _amount_candidates(scanned)
    phones = _Spans(_Span(*match.span()) for match in _PHONE.finditer(scanned))
    references = _reference_candidates(
        scanned, _Spans(candidate.number for candidate in candidates), phones
    )
    in_references = _Spans(found.value for found in references)
    dates = _Spans(_Span(*match.span()) for match in _DATE.finditer(scanned))

    amounts: list[Money] = []
    seen_amounts: set[tuple[float, str | None]] = set()
    for candidate in candidates:
        if in_references.overlap(candidate.number) or dates.overlap(candidate.number):
            continue
        key = (round(candidate.money.amount, 2), candidate.money.currency)
        if key not in seen_amounts and len(amounts) < MAX_AMOUNTS:
            seen_amounts.add(key)
            amounts.append(candidate.money)

    kept: list[Reference] = []
    seen_values: set[str] = set()
    for found in references:
        value = found.reference.value.upper()
        if value not in seen_values and len(kept) < MAX_REFERENCES:
            seen_values.add(value)
            kept.append(found.reference)
    return tuple(amounts), tuple(kept)


def extract_amounts(text: str) -> tuple[Money, ...]:
    """The amounts of money in ``text``, de-duplicated, in order, at most :data:`MAX_AMOUNTS`."""
    return _scan(text)[0]


def extract_references(text: str) -> tuple[Reference, ...]:
    """The references in ``text``, de-duplicated, in order, at most :data:`MAX_REFERENCES`."""
    return _scan(text)[1]


@functools.cache
def _identifier() -> Any:
    """The language identifier, loaded once, restricted to :data:`LANGUAGES`."""
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    known = set(identifier.labels)
    identifier.set_languages([code for code in LANGUAGES if code in known])
    return identifier


def _enough_text(text: str) -> bool:
    """Whether ``text`` has words enough to tell its language."""
    words = _LETTER_WORD.findall(text)
    if len(words) >= _MIN_WORDS:
        return True
    return len(_UNSPACED_SCRIPT.findall(text)) >= _MIN_UNSPACED_CHARS


def detect_language(text: str) -> tuple[str | None, float | None]:
    """The ISO 639-1 code of ``text`` and its probability, or ``(None, None)`` if too short."""
    cleaned = _LANGUAGE_NOISE.sub(" ", text[:SCAN_CHARS])
    if not _enough_text(cleaned):
        return None, None
    code, probability = _identifier().classify(cleaned)
    confidence = float(probability)
    if not math.isfinite(confidence):
        return None, None
    return str(code), min(max(confidence, 0.0), 1.0)


def extract_facts(text: str) -> Facts:
    """Amounts, references and language of ``text``."""
    amounts, references = _scan(text)
    language, confidence = detect_language(text)
    return Facts(
        amounts=amounts,
        references=references,
        language=language,
        language_confidence=confidence,
    )
