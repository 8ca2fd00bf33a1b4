"""The customer's new text: quoted reply history and signatures removed from a body text."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from services.ingest.email.text import normalise_newlines, remove_invisible, tidy

# Lines longer than this are never treated as reply attributions or signature lines.
_MAX_MARKER_LINE_CHARS: Final = 500


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
        lines = normalise_newlines(text).split("\n")
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
    return tidy("\n".join(kept))


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
    return any(remove_invisible(line).strip() for line in lines)


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
    lines = normalise_newlines(text).split("\n")
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
    return tidy("\n".join(lines[:end]))
