"""E-mail as it really arrives, and the worst e-mail that can be sent.

One fixture per class of real-world message that the parser got wrong, each checked for what
the classifier will read (the customer text, the customer address, the attachment names), not
only for being accepted; and hostile messages within the 10 MiB limit that must be refused
before the standard library spends seconds building their parts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.ingest import normalise
from services.ingest.email import (
    DEFAULT_MAX_TEXT_CHARS,
    MAX_PARTS,
    TRUNCATION_MARKER,
    Attachment,
    EmailParseError,
    ParsedEmail,
    parse_email,
    strip_quoted_reply,
    strip_signature,
)
from services.ingest.email import parse as email_parse

FIXTURES = Path(__file__).parent / "fixtures" / "real_world"
TEN_MIB = 10 * 1024 * 1024
NOW = datetime(2025, 11, 10, 12, 0, tzinfo=UTC)
# CPU seconds (not wall-clock: the test machine may be busy) one parse may take.
CPU_BUDGET_S = 0.5


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse(name: str, **kwargs: int) -> ParsedEmail:
    return parse_email(load(name), max_bytes=TEN_MIB, **kwargs)


def classifier_text(parsed: ParsedEmail, raw: bytes, *, max_text_chars: int = 20_000) -> str:
    """The text of the event ingest publishes for this message, as the classifier reads it."""
    event = normalise.from_email(
        parsed,
        source_event_id=normalise.email_source_id(parsed, raw, None),
        platform="test",
        max_text_chars=max_text_chars,
        now=NOW,
    )
    assert event.customer.id == parsed.sender_address
    return event.text


# --------------------------------------------------------------------------------------------
# Item 1: refuse a message with too many parts before building them; bound the text work
# --------------------------------------------------------------------------------------------

MULTIPART_HEAD = b'From: jane@example.com\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'


def filled(head: bytes, unit: bytes, tail: bytes = b"") -> bytes:
    """``head``, then ``unit`` as often as fits, then ``tail``: exactly 10 MiB or just under."""
    return head + unit * ((TEN_MIB - len(head) - len(tail)) // len(unit)) + tail


def nested_parts() -> bytes:
    """Forty nested multiparts, each boundary used for many empty parts."""
    head = b"From: jane@example.com\r\n"
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="n%d"\r\n\r\n--n%d\r\n' % (i, i)
        for i in range(40)
    )
    units = b"".join(b"--n%d\r\n\r\n" % i for i in range(40))
    return filled(head + opening, units)


HOSTILE_MESSAGES: dict[str, Callable[[], bytes]] = {
    "empty-parts-crlf": lambda: filled(MULTIPART_HEAD, b"--b\r\n\r\n"),
    "empty-parts-lf": lambda: filled(MULTIPART_HEAD.replace(b"\r\n", b"\n"), b"--b\n\n"),
    "empty-parts-cr": lambda: filled(MULTIPART_HEAD.replace(b"\r\n", b"\r"), b"--b\r\r"),
    "parts-with-headers": lambda: filled(
        MULTIPART_HEAD, b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    ),
    "trailing-space-delimiters": lambda: filled(MULTIPART_HEAD, b"--b \t\r\n\r\n"),
    "unquoted-outlook-boundary": lambda: filled(
        b"From: jane@example.com\r\nContent-Type: multipart/mixed;\r\n"
        b"\tboundary=----=_NextPart_000_0001\r\n\r\n",
        b"------=_NextPart_000_0001\r\n\r\n",
    ),
    "nested-boundaries": nested_parts,
    "rfc2231-boundary": lambda: filled(
        b"From: jane@example.com\r\n"
        b'Content-Type: multipart/mixed; boundary*0="b"; boundary*1="x"\r\n\r\n',
        b"--bx\r\n\r\n" + b"x" * 200 + b"\r\n",
    ),
    "header-lines": lambda: filled(b"From: jane@example.com\r\n", b"X:y\r\n", b"\r\nHi\r\n"),
    "folded-header-lines": lambda: filled(
        b"From: jane@example.com\r\nSubject: x", b"\r\n a", b"\r\n\r\nHi\r\n"
    ),
    "short-text-lines": lambda: filled(b"From: jane@example.com\r\n\r\n", b"a\n"),
}


@pytest.mark.parametrize("build", HOSTILE_MESSAGES.values(), ids=HOSTILE_MESSAGES.keys())
def test_worst_messages_within_the_size_limit_are_refused_cheaply(
    build: Callable[[], bytes],
) -> None:
    raw = build()
    assert len(raw) <= TEN_MIB
    started = time.process_time()
    with pytest.raises(EmailParseError) as excinfo:
        parse_email(raw, max_bytes=TEN_MIB)
    elapsed = time.process_time() - started
    assert str(excinfo.value) in {"message has too many parts", "message structure is too complex"}
    assert elapsed < CPU_BUDGET_S, f"refused after {elapsed:.2f} s of CPU"


@pytest.mark.parametrize(
    "name",
    [
        "empty-parts-crlf",
        "empty-parts-lf",
        "empty-parts-cr",
        "parts-with-headers",
        "trailing-space-delimiters",
        "unquoted-outlook-boundary",
        "rfc2231-boundary",
    ],
)
def test_too_many_empty_parts_give_the_too_many_parts_reason(name: str) -> None:
    with pytest.raises(EmailParseError, match=r"^message has too many parts$"):
        parse_email(HOSTILE_MESSAGES[name](), max_bytes=TEN_MIB)


def test_parts_at_the_limit_are_still_parsed() -> None:
    # The message itself counts as one of the 500 parts.
    parts = b"".join(
        b"--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(MAX_PARTS - 1)
    )
    parsed = parse_email(MULTIPART_HEAD + parts + b"--b--\r\n")
    assert parsed.text == "part 0"
    assert len(parsed.attachments) == 0


def test_parameter_flood_in_every_part_is_read_cheaply() -> None:
    # The header parser takes about 30 µs a parameter, and every part's headers are read
    # several times: 8 KiB of parameters in each of 499 parts took minutes.
    flood = b"; a=b" * 1600
    part = (
        b"--b\r\nContent-Type: application/pdf" + flood + b"; name=x.pdf\r\n"
        b"Content-Disposition: attachment" + flood + b"\r\n\r\n%PDF\r\n"
    )
    raw = MULTIPART_HEAD + b"--b\r\n\r\nSee the files.\r\n" + part * 498 + b"--b--\r\n"
    started = time.process_time()
    parsed = parse_email(raw, max_bytes=TEN_MIB)
    elapsed = time.process_time() - started
    assert parsed.text == "See the files."
    assert len(parsed.attachments) == 498
    assert elapsed < CPU_BUDGET_S, f"parsed in {elapsed:.2f} s of CPU"


def test_dashes_in_text_are_not_counted_as_parts() -> None:
    body = b"Order list:\r\n" + b"-- item\r\n--\r\n---\r\n" * 400 + b"That is all.\r\n"
    parsed = parse_email(b"From: jane@example.com\r\n\r\n" + body)
    assert parsed.full_text.startswith("Order list:\n-- item")


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            filled(
                b"From: jane@example.com\r\nContent-Type: text/plain\r\n\r\nMy words first.\r\n",
                b"a" * 62 + b"\r\n",
            ),
            id="long-lines",
        ),
        pytest.param(
            filled(b"From: jane@example.com\r\n\r\nMy words first.\r\n", b"x" * 4096),
            id="one-line",
        ),
        pytest.param(
            filled(
                b"From: jane@example.com\r\n\r\nMy words first.\r\n", b"> " + b"q" * 60 + b"\r\n"
            ),
            id="quoted-lines",
        ),
    ],
)
def test_largest_text_is_read_cheaply_and_truncated(raw: bytes) -> None:
    started = time.process_time()
    parsed = parse_email(raw, max_bytes=TEN_MIB)
    elapsed = time.process_time() - started
    assert parsed.text.startswith("My words first.")
    assert len(parsed.text) <= DEFAULT_MAX_TEXT_CHARS
    assert elapsed < 2 * CPU_BUDGET_S, f"parsed in {elapsed:.2f} s of CPU"


def test_quote_and_signature_stripping_never_see_huge_text(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []

    def recording(strip: Callable[[str], str]) -> Callable[[str], str]:
        def wrapper(text: str) -> str:
            seen.append(len(text))
            return strip(text)

        return wrapper

    # Patched where parse_email looks them up.
    monkeypatch.setattr(email_parse, "strip_quoted_reply", recording(strip_quoted_reply))
    monkeypatch.setattr(email_parse, "strip_signature", recording(strip_signature))
    raw = b"From: jane@example.com\r\n\r\nMy words.\r\n" + (b"> " + b"q" * 70 + b"\r\n") * 60_000
    parsed = parse_email(raw, max_bytes=TEN_MIB)
    assert parsed.text == "My words."
    assert seen
    assert max(seen) <= 200_000


# --------------------------------------------------------------------------------------------
# Item 13: the customer is the address, never the display name
# --------------------------------------------------------------------------------------------


def test_display_name_that_looks_like_an_address_is_neither_sender_nor_recipient() -> None:
    raw = load("display_name_spoof.eml")
    parsed = parse_email(raw)
    assert parsed.sender_address == "bob@example.net"
    assert parsed.sender_name is None
    assert parsed.to == ("support@acme.com", "billing@acme.com")
    assert classifier_text(parsed, raw).startswith("Please send order 4711")


@pytest.mark.parametrize(
    ("from_header", "address", "name"),
    [
        (b"alice@example.com <bob@example.net>", "bob@example.net", None),
        (b"alice@example.com<bob@example.net>", "bob@example.net", None),
        (b'"alice@example.com" <bob@example.net>', "bob@example.net", None),
        (b"=?utf-8?q?alice=40example.com?= <bob@example.net>", "bob@example.net", None),
        (b"alice@example.com (Alice) <bob@example.net>", "bob@example.net", None),
        (b"Alice <bob@example.net>, alice@example.com", "bob@example.net", "Alice"),
        (
            b"Alice Example via Forms <bob@example.net>",
            "bob@example.net",
            "Alice Example via Forms",
        ),
        (b"Team: alice@example.com <bob@example.net>;", "bob@example.net", None),
    ],
)
def test_sender_address_comes_from_the_angle_address(
    from_header: bytes, address: str, name: str | None
) -> None:
    raw = b"From: " + from_header + b"\r\nTo: support@acme.com\r\n\r\nHello\r\n"
    parsed = parse_email(raw)
    assert (parsed.sender_address, parsed.sender_name) == (address, name)


@pytest.mark.parametrize(
    ("to_header", "expected"),
    [
        (b"carol@example.com <support@acme.com>", ("support@acme.com",)),
        (b'"x@evil.example, y@evil.example" <support@acme.com>', ("support@acme.com",)),
        (
            b"carol@example.com <support@acme.com>, Bill <billing@acme.com>",
            ("support@acme.com", "billing@acme.com"),
        ),
    ],
)
def test_recipient_display_names_are_not_recipients(
    to_header: bytes, expected: tuple[str, ...]
) -> None:
    raw = b"From: jane@example.com\r\nTo: " + to_header + b"\r\n\r\nHello\r\n"
    assert parse_email(raw).to == expected


# --------------------------------------------------------------------------------------------
# Item 14: valid messages that were refused or mangled
# --------------------------------------------------------------------------------------------


def test_outlook_express_unquoted_boundary_with_equals_sign() -> None:
    raw = load("outlook_express_boundary.eml")
    parsed = parse_email(raw)
    text = "Meine Bestellung 5521 ist seit zwei Wochen nicht angekommen. Bitte prüfen Sie das."
    assert parsed.text == text
    assert parsed.html_only is False
    assert parsed.attachments == ()
    assert classifier_text(parsed, raw) == text


def test_byte_order_mark_before_the_first_header() -> None:
    raw = load("bom_before_headers.eml")
    parsed = parse_email(raw)
    assert parsed.sender_address == "lena.berg@example.se"
    assert parsed.sender_name == "Lena Berg"
    assert parsed.subject == "Wrong size delivered"
    assert classifier_text(parsed, raw) == (
        "I ordered size M and received size XL. Please exchange it."
    )


def test_header_line_that_lost_its_folding_whitespace() -> None:
    raw = load("lost_folding_whitespace.eml")
    parsed = parse_email(raw)
    assert parsed.subject == (
        "Complaint about the replacement kettle that arrived broken again after the first one "
        "was also broken"
    )
    assert parsed.message_id == "lost-fold-1@example.com"
    assert parsed.text == (
        "The replacement kettle leaks as well. I want a refund, not another kettle."
    )
    assert "Content-Type" not in parsed.full_text
    assert [a.filename for a in parsed.attachments] == ["kettle.jpg"]


def test_mbox_from_line_is_not_a_lost_folding() -> None:
    raw = (
        b"From jane@example.com Mon Nov  3 10:00:00 2025\r\n"
        b"From: jane@example.com\r\nSubject: Late\r\n\r\nMy order is late.\r\n"
    )
    parsed = parse_email(raw)
    assert (parsed.subject, parsed.text) == ("Late", "My order is late.")


def test_body_without_a_separator_line_is_still_the_body() -> None:
    raw = b"From: jane@example.com\r\nSubject: Hi\r\nMy order is late.\r\nPlease help.\r\n"
    assert parse_email(raw).text == "My order is late.\nPlease help."


def test_over_long_text_keeps_the_customers_first_lines() -> None:
    raw = load("over_long_text.eml")
    parsed = parse_email(raw, max_text_chars=2_000)
    assert parsed.text.startswith(
        "Hello, I am writing about order 88231. The invoice charges me twice"
    )
    assert parsed.text.endswith(TRUNCATION_MARKER)
    assert len(parsed.text) <= 2_000
    assert classifier_text(parsed, raw, max_text_chars=2_000) == parsed.text


def test_over_long_text_fits_the_default_text_limit() -> None:
    raw = load("over_long_text.eml")
    parsed = parse_email(raw)
    assert len(parsed.text) <= 20_000
    assert parsed.text.endswith(TRUNCATION_MARKER)
    assert classifier_text(parsed, raw).startswith("Hello, I am writing about order 88231.")


def test_truncation_counts_characters_as_the_event_does() -> None:
    # "e" + COMBINING ACUTE is two characters; the event normalises it to one (NFC).
    body = ("Cafe\u0301 " * 2_000).encode()
    parsed = parse_email(b"From: jane@example.com\r\n\r\n" + body, max_text_chars=1_000)
    assert len(parsed.text) <= 1_000
    assert parsed.text.endswith(TRUNCATION_MARKER)


# --------------------------------------------------------------------------------------------
# Item 15: mojibake
# --------------------------------------------------------------------------------------------


def test_raw_eight_bit_byte_inside_an_encoded_word() -> None:
    raw = load("raw_8bit_in_encoded_word.eml")
    parsed = parse_email(raw)
    assert parsed.subject == "Frösche im Paket"
    assert parsed.sender_name == "Jürgen Fröhlich"
    assert classifier_text(parsed, raw) == "Im Paket waren Frösche statt Schuhe."


def test_one_invalid_byte_in_a_utf8_part_is_one_replacement_character() -> None:
    raw = load("invalid_byte_in_utf8_part.eml")
    parsed = parse_email(raw)
    assert classifier_text(parsed, raw) == (
        "Le colis est arrivé cassé, c'est très décevant. Référence \ufffd \u2013 merci de répondre."
    )


# --------------------------------------------------------------------------------------------
# Item 16: signatures, disclaimers, footers, uuencoded files and attachment names
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (
            "closing_with_kind_regards.eml",
            "The refund for order 7310 has still not arrived after three weeks.",
        ),
        (
            "italian_corporate_signature.eml",
            "Buongiorno,\n\nla fattura 2025/118 riporta un importo sbagliato. "
            "Vi prego di correggerla.",
        ),
        (
            "long_corporate_signature.eml",
            "Hi,\n\nThe pallet delivered yesterday (delivery note 55-1921) was crushed on one "
            "side and\nfour of the boxes are unusable. Please arrange a collection and a "
            "replacement.",
        ),
        (
            "german_disclaimer.eml",
            "Sehr geehrte Damen und Herren,\n\nSie haben mir die Rechnung 4410 zweimal "
            "abgebucht. Bitte erstatten Sie den Betrag.\n\nPetra Schulz",
        ),
        (
            "bare_dashes_address_block.eml",
            "The box for order 6610 arrived without the charger that was listed on the "
            "packing slip.",
        ),
        (
            "mobile_carrier_footer.eml",
            "The driver left my package in the rain and everything inside is soaked.",
        ),
        ("german_provider_footer.eml", "Der Mixer ist nach einem Tag kaputt gegangen."),
    ],
)
def test_signature_classes_are_removed_from_the_text(fixture: str, expected: str) -> None:
    raw = load(fixture)
    parsed = parse_email(raw)
    assert parsed.text == expected
    assert classifier_text(parsed, raw) == expected


BODY = "The blender stopped working after two days.\nPlease advise."


@pytest.mark.parametrize(
    "signature",
    [
        "With kind regards,\nJane Doe",
        "With best regards\nJane",
        "With best wishes,\nJane",
        "Many thanks,\nJane",
        "Kind regards,\nJane",
        "Respectfully,\nJane Doe",
        "Sincerely yours,\nJane Doe",
        "Cordiali saluti,\nMario Rossi",
        "Cordiali Saluti\nMario Rossi",
        "Distinti saluti\nMario Rossi",
        "Un cordiale saluto,\nMario",
        "Mit besten Grüßen\nJürgen Müller",
        "Herzliche Grüße\nJürgen",
        "Viele Grüße,\nJürgen",
        "Sincères salutations,\nAmélie",
        "Bien à vous,\nAmélie",
        "Un cordial saludo,\nMaría",
        "Saludos cordiales,\nMaría",
        "Met vriendelijke groet,\nJan de Vries",
        "Com os melhores cumprimentos,\nAna",
        "Med vänlig hälsning\nSven",
        "Z poważaniem\nJan Kowalski",
        "Sent from my Verizon, Samsung Galaxy smartphone",
        "Sent via the Samsung Galaxy S9, an AT&T 5G Evolution capable smartphone",
        "Sent from Samsung Mobile",
        "Sent from my T-Mobile 4G LTE Device",
        "Sent wirelessly from my BlackBerry device on the Bell network.",
        "Sent from Yahoo Mail on Android",
        "Sent from Mail for Windows 10",
        "Sent with Proton Mail secure email.",
        "Diese Nachricht wurde von meinem Android Mobiltelefon mit WEB.DE Mail gesendet.",
        "Gesendet von meinem Huawei Mobiltelefon",
        "Envoyé depuis mon smartphone Samsung Galaxy.",
    ],
)
def test_strip_signature_closings_and_footers(signature: str) -> None:
    assert strip_signature(f"{BODY}\n\n{signature}\n") == BODY


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            f"{BODY}\n\nRegards,\n" + "\n".join(f"Line {i}" for i in range(20)),
            id="long-block-of-ordinary-lines",
        ),
        pytest.param(
            f"{BODY}\n\n--\n" + "\n".join(f"Step {i} done" for i in range(20)),
            id="dashes-above-many-ordinary-lines",
        ),
        pytest.param(
            f"{BODY}\n\nThis message is confidential, so please do not share it with the courier.",
            id="customer-sentence-about-confidentiality",
        ),
        pytest.param(f"{BODY}\n\nSent from the warehouse on Monday", id="sent-from-a-place"),
        pytest.param(
            f"{BODY}\n\nSent with a broken phone charger\nand no cable", id="sent-with-a-thing"
        ),
        pytest.param(f"{BODY}\n\nWith kind regards to your manager", id="closing-in-a-sentence"),
    ],
)
def test_strip_signature_stays_conservative(text: str) -> None:
    assert strip_signature(text) == text


def test_inline_uuencoded_file_is_an_attachment_not_text() -> None:
    raw = load("inline_uuencode.eml")
    parsed = parse_email(raw)
    assert parsed.text == (
        "The screen of the monitor I received is scratched. A photo is attached.\n\n"
        "Please send a replacement."
    )
    assert "begin 644" not in parsed.full_text
    assert parsed.attachments == (Attachment("scratch.png", "image/png", 208),)
    assert classifier_text(parsed, raw) == parsed.text


def test_uuencode_like_text_without_data_lines_stays() -> None:
    body = b"Please begin 644 steps tomorrow.\r\nbegin 644 plan.txt\r\nthis is not encoded\r\n"
    parsed = parse_email(b"From: jane@example.com\r\n\r\n" + body)
    assert parsed.text == (
        "Please begin 644 steps tomorrow.\nbegin 644 plan.txt\nthis is not encoded"
    )
    assert parsed.attachments == ()


def test_attachment_names_keep_their_basename() -> None:
    parsed = parse("attachment_names.eml")
    assert parsed.text == "Photos of the broken lid are attached."
    assert parsed.attachments == (
        Attachment("lid.png", "image/png", 8),
        Attachment("Rechnung_März.pdf", "application/pdf", 9),
        Attachment("Säule.jpg", "image/jpeg", 6),
    )
