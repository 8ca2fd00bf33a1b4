"""Tests for services.ingest.email (the e-mail parser)."""

from __future__ import annotations

import base64
import quopri
import warnings
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.email import (
    Attachment,
    EmailParseError,
    ParsedEmail,
    html_to_text,
    parse_email,
    strip_quoted_reply,
    strip_signature,
)

FIXTURES = Path(__file__).parent / "fixtures" / "emails"

# Reasons parse_email gives for unusable input. The catch-all "message could not be parsed"
# is deliberately absent: reaching it means an unexpected internal error.
KNOWN_REASONS = {
    "empty message",
    "missing From address",
    "message has no text content",
    "message is nested too deeply",
    "message has too many parts",
    "message structure is too complex",
}

PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def build(
    body: str = "Hello, my order is late.",
    *,
    subject: str | None = "Order late",
    sender: str | None = "Jane Doe <jane@example.com>",
    **headers: str,
) -> bytes:
    msg = EmailMessage()
    if sender is not None:
        msg["From"] = sender
    msg["To"] = "support@acme.com"
    if subject is not None:
        msg["Subject"] = subject
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes()


def raw_message(
    body: bytes,
    *,
    content_type: str = "text/plain",
    charset: str | None = "utf-8",
    cte: str | None = None,
    subject: bytes = b"Hello",
    sender: bytes = b"Jane Doe <jane@example.com>",
    extra: bytes = b"",
) -> bytes:
    """A message assembled byte by byte, for encodings EmailMessage would refuse to produce."""
    ctype = content_type.encode() + (b"; charset=" + charset.encode() if charset else b"")
    lines = [
        b"From: " + sender,
        b"To: support@acme.com",
        b"Subject: " + subject,
        b"MIME-Version: 1.0",
        b"Content-Type: " + ctype,
    ]
    if cte:
        lines.append(b"Content-Transfer-Encoding: " + cte.encode())
    head = b"\r\n".join(lines) + b"\r\n" + extra
    return head + b"\r\n" + body


def encoded_word(text: str, charset: str) -> bytes:
    data = base64.b64encode(text.encode(charset)).decode()
    return f"=?{charset}?B?{data}?=".encode()


def parse_or_reason(raw: bytes) -> ParsedEmail | str:
    """The parsed message, or the reason parse_email gave for rejecting it."""
    try:
        return parse_email(raw)
    except EmailParseError as exc:
        return str(exc)


def expect_error(raw: bytes, reason: str, **kwargs: int) -> EmailParseError:
    with pytest.raises(EmailParseError) as excinfo:
        parse_email(raw, **kwargs)
    assert str(excinfo.value) == reason
    return excinfo.value


# --------------------------------------------------------------------------------------------
# Whole messages
# --------------------------------------------------------------------------------------------


def test_plain_text_message() -> None:
    raw = build(
        "Hello,\n\nMy order 4711 arrived damaged.\nPlease send a new one.\n",
        subject="Damaged   order\t4711",
        Date="Mon, 03 Nov 2025 10:02:00 +0100",
        Message_ID="<abc@mail.example.com>",
        Cc="Billing <Billing@Acme.com>",
    )
    parsed = parse_email(raw)
    assert parsed == ParsedEmail(
        message_id="abc@mail.example.com",
        in_reply_to=None,
        references=(),
        sender_address="jane@example.com",
        sender_name="Jane Doe",
        to=("support@acme.com", "billing@acme.com"),
        subject="Damaged order 4711",
        date=datetime(2025, 11, 3, 9, 2, tzinfo=UTC),
        text="Hello,\n\nMy order 4711 arrived damaged.\nPlease send a new one.",
        full_text="Hello,\n\nMy order 4711 arrived damaged.\nPlease send a new one.",
        html_only=False,
        attachments=(),
    )


def test_threading_headers_parsed_exactly() -> None:
    extra = (
        b"Message-ID:\r\n <CAKq7=xyz+1@mail.gmail.com>\r\n"
        b"In-Reply-To: <ticket-42.1@helpdesk.acme.com> (Support's message)\r\n"
        b"References: <root@acme.com>\r\n"
        b" <ticket-42.1@helpdesk.acme.com>\r\n"
        b"\t<root@acme.com> <third@x.example>\r\n"
    )
    parsed = parse_email(raw_message(b"Any news?\r\n", extra=extra))
    assert parsed.message_id == "CAKq7=xyz+1@mail.gmail.com"
    assert parsed.in_reply_to == "ticket-42.1@helpdesk.acme.com"
    assert parsed.references == (
        "root@acme.com",
        "ticket-42.1@helpdesk.acme.com",
        "third@x.example",
    )


def test_message_id_without_brackets_and_missing_threading_headers() -> None:
    parsed = parse_email(raw_message(b"Hi\r\n", extra=b"Message-ID: bare-id@example.com\r\n"))
    assert parsed.message_id == "bare-id@example.com"
    assert parsed.in_reply_to is None
    assert parsed.references == ()


def test_html_only_message() -> None:
    html = (
        "<html><head><title>Ignored</title><style>p { color: red }</style></head><body>"
        "<p>Hello&nbsp;team,</p><p>My <b>invoice</b> is wrong:</p>"
        "<ul><li>Item A</li><li>Item B &amp; C</li></ul>"
        "<script>alert('x')</script>"
        "<blockquote>Earlier message</blockquote></body></html>"
    )
    msg = EmailMessage()
    msg["From"] = "jane@example.com"
    msg["Subject"] = "Invoice"
    msg.set_content(html, subtype="html")
    parsed = parse_email(msg.as_bytes())
    assert parsed.html_only is True
    assert parsed.text == "Hello team,\n\nMy invoice is wrong:\n\n- Item A\n- Item B & C"
    assert parsed.full_text == (
        "Hello team,\n\nMy invoice is wrong:\n\n- Item A\n- Item B & C\nEarlier message"
    )


def test_multipart_alternative_prefers_plain_text() -> None:
    msg = EmailMessage()
    msg["From"] = "jane@example.com"
    msg.set_content("Plain version of the complaint.")
    msg.add_alternative("<p>HTML version of the complaint.</p>", subtype="html")
    parsed = parse_email(msg.as_bytes())
    assert parsed.text == "Plain version of the complaint."
    assert parsed.html_only is False
    assert parsed.attachments == ()


def test_empty_plain_alternative_falls_back_to_html() -> None:
    msg = EmailMessage()
    msg["From"] = "jane@example.com"
    msg.set_content("  \n")
    msg.add_alternative("<div>Only the HTML part has text.</div>", subtype="html")
    parsed = parse_email(msg.as_bytes())
    assert parsed.text == "Only the HTML part has text."
    assert parsed.html_only is True


PDF_BYTES = b"%PDF-1.4\n" + bytes(range(256)) * 4 + b"\n%%EOF\n"
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00\x01\xfe\xff" * 50


def test_multipart_mixed_with_pdf_and_inline_image() -> None:
    msg = EmailMessage()
    msg["From"] = "Jane <jane@example.com>"
    msg["Subject"] = "Photos of the damage"
    msg.set_content("See the attached invoice and photo.\n")
    msg.add_alternative(
        '<p>See the attached invoice and photo.</p><img src="cid:photo1">', subtype="html"
    )
    html_part = msg.get_body(preferencelist=("html",))
    assert html_part is not None
    html_part.add_related(
        PNG_BYTES, maintype="image", subtype="png", cid="<photo1>", filename="damage.png"
    )
    msg.add_attachment(
        PDF_BYTES, maintype="application", subtype="pdf", filename="Rechnung März.pdf"
    )
    parsed = parse_email(msg.as_bytes())
    assert parsed.text == "See the attached invoice and photo."
    assert parsed.html_only is False
    assert parsed.attachments == (
        Attachment("damage.png", "image/png", len(PNG_BYTES)),
        Attachment("Rechnung März.pdf", "application/pdf", len(PDF_BYTES)),
    )


def test_inline_image_without_filename_is_listed() -> None:
    raw = (
        b"From: jane@example.com\r\n"
        b'Content-Type: multipart/related; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/html\r\n\r\n<p>Look</p><img src='cid:x'>\r\n"
        b"--b\r\nContent-Type: image/gif\r\nContent-ID: <x>\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nR0lGODlhAQABAAAAACw=\r\n"
        b"--b--\r\n"
    )
    parsed = parse_email(raw)
    assert parsed.text == "Look"
    assert parsed.attachments == (Attachment(None, "image/gif", 14),)


def test_rfc2047_and_rfc2231_attachment_filenames() -> None:
    raw = (
        b"From: jane@example.com\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nFiles attached.\r\n"
        b"--b\r\nContent-Type: application/pdf\r\n"
        b'Content-Disposition: attachment; filename="=?UTF-8?B?w7xiZXIucGRm?="\r\n\r\nabc\r\n'
        b"--b\r\nContent-Type: text/plain\r\n"
        b"Content-Disposition: attachment; filename*=UTF-8''na%C3%AFve%20notes.txt\r\n\r\n"
        b"12345\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="C:\\\\Users\\\\x\\\\evil.exe"\r\n\r\n'
        b"\r\n"
        b"--b--\r\n"
    )
    parsed = parse_email(raw)
    assert parsed.text == "Files attached."
    assert parsed.attachments == (
        Attachment("über.pdf", "application/pdf", 3),
        Attachment("naïve notes.txt", "text/plain", 5),
        Attachment("evil.exe", "application/octet-stream", 0),
    )


def test_forwarded_message_is_an_attachment_not_the_body() -> None:
    parsed = parse_email(load("forwarded_complaint.eml"))
    assert parsed.text == "Please handle the customer's complaint attached below."
    assert "kettle" not in parsed.full_text
    assert len(parsed.attachments) == 1
    attachment = parsed.attachments[0]
    assert (attachment.filename, attachment.content_type) == (None, "message/rfc822")
    assert 150 < attachment.size_bytes < 260
    assert parsed.date == datetime(2025, 11, 6, 21, 20, tzinfo=UTC)


def test_message_with_only_an_attached_message_has_no_text() -> None:
    inner = build("Inner text")
    raw = (
        b"From: jane@example.com\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--b--\r\n"
    )
    expect_error(raw, "message has no text content")


# --------------------------------------------------------------------------------------------
# Charsets and transfer encodings
# --------------------------------------------------------------------------------------------

CHARSET_CASES = [
    pytest.param(
        "iso-8859-1",
        "quoted-printable",
        "Le colis est arrivé cassé, c'est très décevant.",
        "Colis cassé",
        id="iso-8859-1-qp",
    ),
    pytest.param(
        "windows-1252",
        "8bit",
        "The \u201cpremium\u201d box wasn\u2019t delivered \u2013 again.",
        "\u201cUrgent\u201d \u2013 refund",
        id="windows-1252-smart-quotes",
    ),
    pytest.param(
        "shift_jis",
        "base64",
        "注文した商品がまだ届いていません。",
        "商品未着のお問い合わせ",
        id="shift_jis-base64",
    ),
    pytest.param(
        "iso-2022-jp",
        "7bit",
        "注文した商品がまだ届いていません。",
        "商品未着のお問い合わせ",
        id="iso-2022-jp",
    ),
    pytest.param(
        "koi8-r",
        "8bit",
        "Заказ 5531 не доставлен, прошу вернуть деньги.",
        "Жалоба на доставку",
        id="koi8-r",
    ),
    pytest.param("gb2312", "base64", "我的订单还没有到。", "投诉", id="gb2312"),
]


@pytest.mark.parametrize(("charset", "cte", "text", "subject"), CHARSET_CASES)
def test_non_utf8_charsets(charset: str, cte: str, text: str, subject: str) -> None:
    payload = text.encode(charset) + b"\r\n"
    if cte == "base64":
        payload = base64.encodebytes(payload)
    elif cte == "quoted-printable":
        payload = quopri.encodestring(payload)
    raw = raw_message(
        payload,
        charset=charset,
        cte=cte,
        subject=encoded_word(subject, charset),
        sender=encoded_word("Ünïcode Nàme", "utf-8") + b" <Sender@Example.com>",
    )
    parsed = parse_email(raw)
    assert parsed.text == text
    assert parsed.subject == subject
    assert parsed.sender_name == "Ünïcode Nàme"
    assert parsed.sender_address == "sender@example.com"


def test_utf8_with_byte_order_mark() -> None:
    raw = raw_message(b"\xef\xbb\xbfCaf\xc3\xa9 was cold.\r\n", charset="utf-8")
    assert parse_email(raw).text == "Café was cold."


def test_lying_us_ascii_charset_with_latin1_bytes() -> None:
    raw = raw_message(b"Caf\xe9 cr\xe8me was cold \x96 twice.\r\n", charset="us-ascii")
    assert parse_email(raw).text == "Café crème was cold \u2013 twice."


@pytest.mark.parametrize(
    ("charset", "body", "expected"),
    [
        pytest.param("x-unknown-charset", "Grüße".encode(), "Grüße", id="unknown-utf8"),
        pytest.param("utf-8", "Grüße".encode("latin-1"), "Grüße", id="utf8-declared-latin1"),
        pytest.param('"UTF-8"', "Grüße".encode(), "Grüße", id="quoted-charset"),
        pytest.param("punycode", b"plain words", "plain words", id="not-a-mail-charset"),
        pytest.param(None, "naïve".encode(), "naïve", id="no-charset-utf8"),
        pytest.param("utf-8", b"\x81\x8d\x8f ok", "ok", id="undecodable-bytes"),
    ],
)
def test_unknown_and_wrong_charsets_degrade(
    charset: str | None, body: bytes, expected: str
) -> None:
    assert parse_email(raw_message(body + b"\r\n", charset=charset)).text == expected


def test_base64_body() -> None:
    body = base64.encodebytes(b"My refund is overdue.\r\nOrder 77.\r\n")
    raw = raw_message(body, cte="base64")
    assert parse_email(raw).text == "My refund is overdue.\nOrder 77."


def test_broken_base64_body_does_not_fail() -> None:
    raw = raw_message(b"TXkgcmVmdW5kIGlzIG92ZXJkdWUu!!!***\r\nQQ\r\n", cte="base64")
    assert parse_email(raw).text == "My refund is overdue.A"


def test_quoted_printable_body_with_soft_breaks() -> None:
    body = (
        b"This is a long line that was wrapped by the quoted-printable encoder so it=\r\n"
        b" fits. Caf=C3=A9 =3D coffee.\r\n"
    )
    raw = raw_message(body, cte="quoted-printable")
    assert parse_email(raw).text == (
        "This is a long line that was wrapped by the quoted-printable encoder so it "
        "fits. Café = coffee."
    )


def test_broken_quoted_printable_does_not_fail() -> None:
    raw = raw_message(b"Bad =ZZ escape and =\r\n=E\r\n", cte="quoted-printable")
    assert parse_email(raw).text == "Bad =ZZ escape and =E"


def test_eight_bit_headers_are_decoded() -> None:
    raw = raw_message(
        b"Body\r\n",
        subject="Réclamation \u2013 urgent".encode(),
        sender="Zoë Ärger <zoe@example.com>".encode("latin-1"),
    )
    parsed = parse_email(raw)
    assert parsed.subject == "Réclamation \u2013 urgent"
    assert parsed.sender_name == "Zoë Ärger"


def test_split_multibyte_encoded_words_are_joined() -> None:
    data = "ééé".encode()
    first = base64.b64encode(data[:3]).decode()
    second = base64.b64encode(data[3:]).decode()
    subject = f"=?utf-8?b?{first}?=\r\n =?utf-8?b?{second}?= done".encode()
    assert parse_email(raw_message(b"x\r\n", subject=subject)).subject == "ééé done"


def test_format_flowed_is_joined() -> None:
    body = b"This paragraph was \r\nsent as flowed \r\ntext.\r\n\r\n> quoted \r\n> line\r\n"
    raw = raw_message(body, charset="utf-8; format=flowed")
    parsed = parse_email(raw)
    assert parsed.full_text == "This paragraph was sent as flowed text.\n\n> quoted line"
    assert parsed.text == "This paragraph was sent as flowed text."


def test_format_flowed_delsp() -> None:
    body = b"Super \r\ncalifragilistic.\r\n"
    raw = raw_message(body, charset="utf-8; format=flowed; delsp=yes")
    assert parse_email(raw).text == "Supercalifragilistic."


# --------------------------------------------------------------------------------------------
# Headers: sender, recipients, subject, date
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("from_header", "address", "name"),
    [
        (b"Jane Doe <Jane.Doe@Example.COM>", "jane.doe@example.com", "Jane Doe"),
        (b'"Doe, Jane" <jane@example.com>', "jane@example.com", "Doe, Jane"),
        (b"jane@example.com (Jane Doe)", "jane@example.com", "Jane Doe"),
        (b"<jane@example.com>", "jane@example.com", None),
        (b"jane@example.com", "jane@example.com", None),
        (b"'Jane Doe' <jane@example.com>", "jane@example.com", "Jane Doe"),
        (b"=?utf-8?q?Doe=2C_J=C3=BCrgen?= <j@example.de>", "j@example.de", "Doe, Jürgen"),
        (b"not an address, jane@example.com", "jane@example.com", None),
        (b'"Unterminated <jane@example.com>', "jane@example.com", None),
        (b"(" * 2000 + b"jane@example.com", "jane@example.com", None),
    ],
)
def test_sender_parsing(from_header: bytes, address: str, name: str | None) -> None:
    parsed = parse_email(raw_message(b"Body\r\n", sender=from_header))
    assert parsed.sender_address == address
    assert parsed.sender_name == name


def test_recipients_are_lowercased_and_deduplicated() -> None:
    extra = b"Cc: Billing <Billing@Acme.com>, support@ACME.com\r\nCc: other@example.org\r\n"
    parsed = parse_email(raw_message(b"Body\r\n", extra=extra))
    assert parsed.to == ("support@acme.com", "billing@acme.com", "other@example.org")


@pytest.mark.parametrize(
    ("date_header", "expected"),
    [
        (b"Mon, 3 Nov 2025 10:02:00 +0100", datetime(2025, 11, 3, 9, 2, tzinfo=UTC)),
        (b"3 Nov 2025 10:02:00 -0500", datetime(2025, 11, 3, 15, 2, tzinfo=UTC)),
        (b"Mon, 3 Nov 2025 10:02:00 -0000", datetime(2025, 11, 3, 10, 2, tzinfo=UTC)),
        (b"Mon, 3 Nov 2025 10:02:00 GMT", datetime(2025, 11, 3, 10, 2, tzinfo=UTC)),
        (b"yesterday at noon", None),
        (b"Mon, 31 Feb 2025 10:02:00 +0000", None),
        (b"Mon, 3 Nov 99999 10:02:00 +0000", None),
        (b"Mon, 3 Nov 2025 10:02:00 +9999", None),
        (b"", None),
    ],
)
def test_date_parsing(date_header: bytes, expected: datetime | None) -> None:
    parsed = parse_email(raw_message(b"Body\r\n", extra=b"Date: " + date_header + b"\r\n"))
    assert parsed.date == expected
    if parsed.date is not None:
        assert parsed.date.tzinfo is UTC


def test_missing_subject_and_date() -> None:
    parsed = parse_email(build(subject=None))
    assert parsed.subject is None
    assert parsed.date is None


def test_malformed_headers_degrade_gracefully() -> None:
    extra = (
        b"Content-Disposition: inline; filename*=bogus''%ZZ%\r\n"
        b"Message-ID: <<>>\r\n"
        b"References: <a@b> <unterminated\r\n"
        b"Reply-To: =?utf-8?q?=?=\r\n"
        b"X-Weird: =?x-nope?b?////?=\r\n"
    )
    raw = raw_message(
        b"Still readable.\r\n",
        content_type="text/plain; name*0*=bad'';;;; format=\"",
        subject=b"=?utf-8?b?not base64!?= =?unknown?q?abc?= =?utf-8?q?ok?=",
        extra=extra,
    )
    parsed = parse_email(raw)
    assert parsed.text == "Still readable."
    assert parsed.references == ("a@b",)
    assert parsed.subject == "=?utf-8?b?not base64!?= abcok"


# --------------------------------------------------------------------------------------------
# Quoted replies and signatures in whole messages
# --------------------------------------------------------------------------------------------


def test_gmail_reply_fixture() -> None:
    parsed = parse_email(load("gmail_reply.eml"))
    assert parsed.text == (
        'Hi,\n\nThe tracking page still says "in transit" and it has been 12 days. Could you\n'
        "please send a replacement or refund me?"
    )
    assert parsed.full_text.endswith("> ACME Support\n>")
    assert parsed.sender_address == "jane.doe@gmail.com"
    assert parsed.in_reply_to == "reply-4821-1@helpdesk.acme.com"
    assert parsed.references == (
        "CAJ1xTicket4821@mail.gmail.com",
        "reply-4821-1@helpdesk.acme.com",
    )


def test_gmail_html_part_drops_quote() -> None:
    raw = load("gmail_reply.eml")
    html = raw.split(b"quoted-printable\n\n")[2].split(b"\n--0000")[0]
    text = html_to_text(quopri.decodestring(html).decode())
    assert text == (
        'Hi,\n\nThe tracking page still says "in transit" and it has been 12 days. Could you '
        "please send a replacement or refund me?\n\nThanks,\nJane"
    )


def test_outlook_reply_fixture() -> None:
    parsed = parse_email(load("outlook_reply.eml"))
    assert parsed.text == (
        "Hello,\n\nI still have not received the refund for order 98765. "
        "It was promised within 5 working days."
    )
    assert parsed.message_id == (
        "DB9PR08MB6588A1B2C3D4E5F6@DB9PR08MB6588.eurprd08.prod.outlook.com"
    )
    assert parsed.sender_name == "Kowalski, Jan"
    assert parsed.to == ("support@acme.com", "finance@contoso.com")


def test_outlook_html_part_drops_history() -> None:
    raw = load("outlook_reply.eml")
    html = raw.split(b"quoted-printable\n\n")[2].split(b"\n--_000")[0]
    text = html_to_text(quopri.decodestring(html).decode("ascii"))
    assert text == (
        "Hello,\n\nI still have not received the refund for order 98765. "
        "It was promised within 5 working days."
    )


def test_french_reply_fixture() -> None:
    parsed = parse_email(load("french_reply.eml"))
    assert parsed.text == (
        "Bonjour,\n\nJe n'ai toujours pas reçu mon colis commandé le 20 octobre. "
        "Pouvez-vous vérifier ?"
    )
    assert parsed.subject == "Re: Colis non reçu"
    assert parsed.sender_name == "Amélie Durand"


def test_german_reply_fixture() -> None:
    parsed = parse_email(load("german_reply.eml"))
    assert parsed.text == (
        "Hallo,\n\ndie Rechnung ist immer noch falsch. Bitte korrigieren Sie die Adresse."
    )
    assert parsed.subject == "AW: Rechnung für Bestellung 55120"
    assert parsed.sender_name == "Jürgen Müller"


def test_message_that_is_only_a_quote_falls_back_to_full_text() -> None:
    body = "On Mon, 3 Nov 2025 at 10:02, Support <support@acme.com> wrote:\n> Hello\n> Bye\n"
    parsed = parse_email(build(body))
    assert parsed.full_text == body.strip()
    assert parsed.text == parsed.full_text


def test_html_message_that_is_only_a_quote_falls_back_to_full_text() -> None:
    msg = EmailMessage()
    msg["From"] = "jane@example.com"
    msg.set_content("<blockquote>Previous answer</blockquote>", subtype="html")
    parsed = parse_email(msg.as_bytes())
    assert parsed.text == "Previous answer"
    assert parsed.html_only is True


def test_signature_and_mobile_footer_removed_from_message() -> None:
    body = (
        "My package never arrived.\n\nBest regards,\nJane Doe\nACME Fan Club\n"
        "+1 555 0100\n\nSent from my iPhone\n"
    )
    parsed = parse_email(build(body))
    assert parsed.text == "My package never arrived."
    assert parsed.full_text == body.strip()


def test_forwarded_message_text_is_removed_from_text_only() -> None:
    body = (
        "Please look at this.\n\n---------- Forwarded message ---------\n"
        "From: Bob <bob@example.com>\nDate: Mon, 3 Nov 2025\nSubject: Broken\n\nIt broke.\n"
    )
    parsed = parse_email(build(body))
    assert parsed.text == "Please look at this."
    assert "It broke." in parsed.full_text


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        build(sender=None),
        raw_message(b"Body\r\n", sender=b""),
        raw_message(b"Body\r\n", sender=b"Jane Doe"),
        raw_message(b"Body\r\n", sender=b"<>"),
        raw_message(b"Body\r\n", sender=b"@example.com"),
        raw_message(b"Body\r\n", sender=b"undisclosed-recipients:;"),
    ],
)
def test_missing_from_address(raw: bytes) -> None:
    expect_error(raw, "missing From address")


def test_error_reason_does_not_leak_content() -> None:
    raw = raw_message(b"secret body\r\n", sender=b"Secret Name")
    error = expect_error(raw, "missing From address")
    assert "secret" not in str(error).lower()


@pytest.mark.parametrize(
    "raw",
    [
        build(""),
        build("   \n\n  \t\n"),
        raw_message(b"<html><body><script>x()</script></body></html>", content_type="text/html"),
        raw_message(b"%PDF-1.4", content_type="application/pdf"),
        raw_message(b"", cte="base64"),
        b"From: jane@example.com\r\nSubject: headers only\r\n",
    ],
)
def test_no_text_content(raw: bytes) -> None:
    expect_error(raw, "message has no text content")


@pytest.mark.parametrize("raw", [b"", b"   \r\n\r\n  ", b"\x00" * 10])
def test_empty_input(raw: bytes) -> None:
    with pytest.raises(EmailParseError) as excinfo:
        parse_email(raw)
    assert str(excinfo.value) in {"empty message", "missing From address"}


@pytest.mark.parametrize(
    "raw",
    [
        bytes(range(256)) * 8,
        b"\xff\xfe\x00\x00garbage\x00\x01\x02",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04",
        b'{"from": "jane@example.com", "text": "json is not e-mail"}',
    ],
)
def test_garbage_bytes(raw: bytes) -> None:
    with pytest.raises(EmailParseError) as excinfo:
        parse_email(raw)
    assert str(excinfo.value) in KNOWN_REASONS


def test_oversize_message() -> None:
    raw = build("x" * 5000)
    expect_error(raw, "message exceeds 1000 bytes", max_bytes=1000)
    expect_error(b"x" * (2 * 1024 * 1024 + 1), "message exceeds 2097152 bytes")


def test_message_at_size_limit_is_accepted() -> None:
    raw = build("Hello")
    assert parse_email(raw, max_bytes=len(raw)).text == "Hello"


def test_non_bytes_input_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse_email("From: jane@example.com\n\nhi")  # type: ignore[arg-type]


def test_bytearray_and_memoryview_are_accepted() -> None:
    raw = build("Hello")
    assert parse_email(bytearray(raw)).text == "Hello"  # type: ignore[arg-type]
    assert parse_email(memoryview(raw)).text == "Hello"  # type: ignore[arg-type]


def nested_multipart(depth: int) -> bytes:
    head = b"From: jane@example.com\r\n"
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(depth)
    )
    closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    return head + opening + b"Content-Type: text/plain\r\n\r\nDeep text" + closing


def test_nesting_within_limit_is_accepted() -> None:
    assert parse_email(nested_multipart(40)).text == "Deep text"


def test_deep_nesting_is_rejected() -> None:
    expect_error(nested_multipart(60), "message is nested too deeply")


def test_deeply_nested_attached_messages_are_rejected() -> None:
    raw = (
        b'From: jane@example.com\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nHello\r\n--b\r\n"
        + b"Content-Type: message/rfc822\r\n\r\n" * 1500
        + b"From: x@example.com\r\n\r\ninner\r\n--b--\r\n"
    )
    expect_error(raw, "message is nested too deeply")


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(nested_multipart(1200), id="many-levels"),
        pytest.param(nested_multipart(50).replace(b"Deep text", b"x\r\n" * 200_000), id="long"),
    ],
)
def test_boundaries_times_lines_is_bounded(raw: bytes) -> None:
    expect_error(raw, "message structure is too complex")


def test_too_many_parts_is_rejected() -> None:
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(600))
    raw = b'From: jane@example.com\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
    expect_error(raw + parts + b"--b--\r\n", "message has too many parts")


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(raw_message(b"<b>" * 100_000, content_type="text/html"), id="many-tags"),
        pytest.param(raw_message(b"&" * 1_900_000, content_type="text/html"), id="ampersands"),
        pytest.param(raw_message(b"<div>" * 60_000 + b"x", content_type="text/html"), id="deep"),
        pytest.param(raw_message(b"<![" * 600_000, content_type="text/html"), id="rejected"),
        pytest.param(raw_message(b"x", sender=b"<" * 1_900_000), id="address-header"),
        pytest.param(raw_message(b" \n" * 300_000 + b"x"), id="blank-lines"),
        pytest.param(
            raw_message(b"a \r\n" * 150_000, charset="utf-8; format=flowed; delsp=yes"),
            id="flowed",
        ),
        pytest.param(raw_message(b"x", sender=b"a" * 1_900_000), id="address-without-at"),
        pytest.param(
            raw_message(("Am " + "schrieb " * 60 + ":\n").encode() * 1500), id="attributions"
        ),
        pytest.param(
            raw_message(b"x", extra=b'Content-Disposition: a; b="' + b";" * 500_000 + b"\r\n"),
            id="part-header",
        ),
    ],
)
def test_pathological_input_is_handled(raw: bytes) -> None:
    result = parse_or_reason(raw)
    if isinstance(result, str):
        assert result in KNOWN_REASONS
    else:
        assert result.text


# --------------------------------------------------------------------------------------------
# html_to_text
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>One</p><p>Two</p>", "One\n\nTwo"),
        ("Line<br>break<br/><br />gap", "Line\nbreak\n\ngap"),
        ("<div>a</div><div>b</div>", "a\nb"),
        ("<div>  lots   of \n\t space  </div>", "lots of space"),
        ("<p>x</p>\n\n<br><br><br><br><p>y</p>", "x\n\ny"),
        ("<ol><li>first</li><li> second </li></ol>after", "- first\n- second\nafter"),
        ("&lt;tag&gt; &amp; &eacute;&#233;&#x00E9; &nbsp;x", "<tag> & ééé x"),
        ("<head><title>T</title></head><body>Body</body>", "Body"),
        ("<style>p{}</style><script>var x = '<p>';</script>Visible", "Visible"),
        ("<p>Keep</p><!-- comment --><![CDATA[cdata]]>", "Keep"),
        ("<table><tr><td>Order</td><td>123</td></tr><tr><td>Qty</td><td>2</td></tr></table>",
         "Order 123\nQty 2"),
        ("<pre>  code\n    indented</pre>", "code\n    indented"),
        ("<p>Reply</p><blockquote type=cite><p>Old</p></blockquote>", "Reply"),
        ("<div>New</div><div class='gmail_quote'>On x wrote:<blockquote>Old</blockquote></div>",
         "New"),
        ("<p>New</p><div class='moz-cite-prefix'>On x wrote:</div><blockquote>Old</blockquote>",
         "New"),
        ("<p>New</p><div id='appendonsend'></div><hr><p>From: x</p><p>Old</p>", "New"),
        ("<p>New</p><div id='divRplyFwdMsg'><b>From:</b> x</div><div>Old</div>", "New"),
        ("<p class=MsoNormal>Line 1</p><p class=MsoNormal>Line 2</p>", "Line 1\nLine 2"),
        ("plain text, no tags &amp; entity", "plain text, no tags & entity"),
        ("http://example.com/looks-like-a-url", "http://example.com/looks-like-a-url"),
        ("report.html", "report.html"),
        ('<?xml version="1.0"?><html><body><p>XHTML</p></body></html>', "XHTML"),
        ("<p>unclosed <b>bold <i>italic", "unclosed bold italic"),
        ("<![if !supportLists]>- <![endif]>item", "- item"),
        ("", ""),
    ],
)  # fmt: skip
def test_html_to_text(html: str, expected: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert html_to_text(html) == expected


def test_html_to_text_rejected_markup_falls_back() -> None:
    assert html_to_text("<p>Hello</p><![ <![ <b>world</b>") == "Hello\n<![ <![ world"


def test_html_to_text_converts_only_a_bounded_prefix() -> None:
    html = "<p>Start</p>" + "<b>x</b>" * 30_000
    text = html_to_text(html)
    assert text.startswith("Start\n\nx")
    assert len(text) < 30_000


# --------------------------------------------------------------------------------------------
# strip_quoted_reply
# --------------------------------------------------------------------------------------------

NEW_TEXT = "Still waiting for my refund.\nOrder 98765."


@pytest.mark.parametrize(
    "history",
    [
        pytest.param(
            "On Mon, 3 Nov 2025 at 10:02, Support <support@acme.com> wrote:\n> Hello\n> Bye",
            id="gmail",
        ),
        pytest.param(
            "On Mon, 3 Nov 2025 at 10:02, ACME Customer Support Team <\n"
            "support@acme.com> wrote:\n\n> Hello",
            id="gmail-wrapped",
        ),
        pytest.param(
            'On 11/3/25, 10:02 AM, "Support" <support@acme.com> wrote:\n\nOld text',
            id="apple-unquoted",
        ),
        pytest.param(
            "Le lun. 3 nov. 2025 à 10:02, Support <support@acme.com> a écrit :\n> Bonjour",
            id="french",
        ),
        pytest.param(
            "Am Mo., 3. Nov. 2025 um 10:02 Uhr schrieb Support <support@acme.com>:\n> Hallo",
            id="german",
        ),
        pytest.param(
            "El lun, 3 nov 2025 a las 10:02, Support (<support@acme.com>) escribió:\n> Hola",
            id="spanish",
        ),
        pytest.param(
            "Op ma 3 nov 2025 om 10:02 schreef Support <support@acme.com>:\n> Hallo",
            id="dutch",
        ),
        pytest.param(
            "Il giorno lun 3 nov 2025 alle ore 10:02 Support <support@acme.com> ha scritto:\n"
            "> Ciao",
            id="italian",
        ),
        pytest.param(
            "Em seg., 3 de nov. de 2025 às 10:02, Support <support@acme.com> escreveu:\n> Olá",
            id="portuguese",
        ),
        pytest.param("Support wrote:\n> Hello\n>> older", id="plain-wrote"),
        pytest.param(
            "-----Original Message-----\nFrom: Support\nSent: Monday\n\nOld", id="original-message"
        ),
        pytest.param("----- Original Message -----\nFrom: Support\n\nOld", id="original-spaced"),
        pytest.param(
            "-------- Message d'origine --------\nDe : Support\n\nAncien", id="original-french"
        ),
        pytest.param(
            "________________________________\nFrom: ACME Support <support@acme.com>\n"
            "Sent: Monday, November 3, 2025 10:02 AM\nTo: Jane\nSubject: RE: Refund\n\nOld",
            id="outlook-separator",
        ),
        pytest.param(
            "From: ACME Support <support@acme.com>\nSent: Monday, November 3, 2025 10:02 AM\n"
            "To: Jane Doe <jane@example.com>\nSubject: RE: Refund\n\nDear Jane,\nOld text",
            id="outlook-header-block",
        ),
        pytest.param(
            "*From:* ACME Support <support@acme.com>\n*Sent:* Monday\n*To:* Jane\n\nOld",
            id="outlook-bold-headers",
        ),
        pytest.param(
            "De : Service Client <support@acme.com>\nEnvoyé : lundi 3 novembre 2025 10:02\n"
            "À : Jane\nObjet : RE: Remboursement\n\nAncien texte",
            id="outlook-french",
        ),
        pytest.param(
            "Von: Kundenservice <support@acme.com>\nGesendet: Montag, 3. November 2025 10:02\n"
            "An: Jane\nBetreff: AW: Rückerstattung\n\nAlter Text",
            id="outlook-german",
        ),
        pytest.param(
            "---------- Forwarded message ---------\nFrom: Bob <bob@example.com>\n\nFwd text",
            id="gmail-forward",
        ),
        pytest.param("Begin forwarded message:\n\nFrom: Bob\nOld", id="apple-forward"),
        pytest.param("> only\n> quoted\n> lines", id="quoted-lines"),
    ],
)
def test_strip_quoted_reply(history: str) -> None:
    assert strip_quoted_reply(f"{NEW_TEXT}\n\n{history}\n") == NEW_TEXT


def test_strip_quoted_reply_keeps_interleaved_answers() -> None:
    text = "> Which order?\n98765\n\n> When did you order?\nLast Monday.\n"
    assert strip_quoted_reply(text) == "98765\n\nLast Monday."


def test_strip_quoted_reply_keeps_answers_after_attributed_quote() -> None:
    text = "On Mon, 3 Nov 2025, Support wrote:\n> Which order?\n\n98765\n"
    assert strip_quoted_reply(text) == "98765"


@pytest.mark.parametrize(
    "text",
    [
        "On Monday my neighbour wrote: nothing useful.",
        "On Monday the courier wrote:\nthe parcel was left at the door.",
        "From: my account page I cannot log in.\nTo: whoever reads this.",
        "Subject: refund\nI want my money back.",
        "I paid -- twice -- for the same order.",
        "Use the code > 100 for discount?",
    ],
)
def test_strip_quoted_reply_keeps_ordinary_text(text: str) -> None:
    assert strip_quoted_reply(text) == text


def test_strip_quoted_reply_tidies_whitespace() -> None:
    assert strip_quoted_reply("a  \r\n\r\n\r\n\r\nb\t\r\n") == "a\n\nb"


# --------------------------------------------------------------------------------------------
# strip_signature
# --------------------------------------------------------------------------------------------

BODY = "The blender stopped working after two days.\nPlease advise."


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param("-- \nJane Doe\nhttps://jane.example.com", id="delimiter"),
        pytest.param("--\nJane Doe", id="bare-delimiter"),
        pytest.param("Sent from my iPhone", id="iphone"),
        pytest.param("Sent from my Galaxy", id="galaxy"),
        pytest.param("Get Outlook for iOS<https://aka.ms/o0ukef>", id="outlook-ios"),
        pytest.param("Get Outlook for Android", id="outlook-android"),
        pytest.param("Envoyé de mon iPhone", id="french-iphone"),
        pytest.param("Von meinem iPhone gesendet", id="german-iphone"),
        pytest.param("Regards,\nJane", id="regards"),
        pytest.param("Best regards,\nJane Doe\nSenior Buyer\nContoso Ltd.\n+44 20 7946 0000",
                     id="best-regards-block"),
        pytest.param("Kind regards,\n\nJane Doe\nwww.contoso.com", id="kind-regards"),
        pytest.param("Thanks,\nJane", id="thanks"),
        pytest.param("Thank you,\nJane", id="thank-you"),
        pytest.param("Thanks in advance!", id="thanks-in-advance"),
        pytest.param("Thanks, Jane", id="thanks-name-same-line"),
        pytest.param("Thanks and regards,\nJane", id="thanks-and-regards"),
        pytest.param(
            "Regards,\nJane\n-- \n" + "\n".join(f"Footer line {i}" for i in range(20)),
            id="closing-above-long-delimited-signature",
        ),
        pytest.param("Cheers,\nJ.", id="cheers"),
        pytest.param("Sincerely,\nJane Doe", id="sincerely"),
        pytest.param("Best,\nJane", id="best"),
        pytest.param("Cordialement,\nAmélie Durand\n06 12 34 56 78", id="cordialement"),
        pytest.param("Mit freundlichen Grüßen\nJürgen Müller", id="mfg"),
        pytest.param("Saludos,\nMaría", id="saludos"),
        pytest.param("Thanks,\nJane\n\nSent from my iPhone", id="closing-and-mobile"),
        pytest.param("Regards,\nJane\n-- \nJane Doe | ACME", id="closing-and-delimiter"),
        pytest.param(
            "Regards,\nJane\n\nThis email and any attachments are confidential and intended "
            "solely for the addressee. If you received it in error, please delete it.",
            id="closing-and-disclaimer",
        ),
    ],
)  # fmt: skip
def test_strip_signature(signature: str) -> None:
    assert strip_signature(f"{BODY}\n\n{signature}\n") == BODY


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Thanks,\nJane", id="would-leave-nothing"),
        pytest.param(
            f"{BODY}\n\nThanks,\nJane\n\nP.S. The replacement I received last week is broken "
            "as well, so please refund both orders.",
            id="long-line-after-closing",
        ),
        pytest.param(f"{BODY}\n\nThanks,\nJane\nCan you call me back?", id="question-after"),
        pytest.param(
            "Thanks for the quick reply.\nThe blender still does not work.", id="thanks-sentence"
        ),
        pytest.param(
            "Regards,\n" + "\n".join(f"line {i}" for i in range(15)), id="closing-too-early"
        ),
        pytest.param("Best regards to your team for trying.", id="closing-words-in-sentence"),
        pytest.param("I bought it at\nBest Buy\nlast week.", id="closing-word-in-a-name"),
        pytest.param(f"{BODY}\n\nThanks for nothing", id="thanks-lowercase-continuation"),
    ],
)
def test_strip_signature_is_conservative(text: str) -> None:
    assert strip_signature(text) == text


def test_strip_signature_never_strips_more_than_twelve_lines() -> None:
    tail = "\n".join(f"Line {i}" for i in range(13))
    text = f"{BODY}\n\nRegards,\n{tail}"
    assert strip_signature(text) == text


def test_strip_signature_handles_crlf_and_trailing_blank_lines() -> None:
    assert strip_signature(f"{BODY}\r\n\r\nThanks,\r\nJane\r\n\r\n\r\n") == BODY


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

VALID_MESSAGE = load("gmail_reply.eml")


def check_result(raw: bytes) -> None:
    """parse_email either fails with a known reason or returns a usable result."""
    parsed = parse_or_reason(raw)
    if isinstance(parsed, str):
        assert parsed in KNOWN_REASONS
        return
    assert parsed.sender_address
    assert "@" in parsed.sender_address
    assert parsed.text
    assert parsed.full_text
    for value in (parsed.text, parsed.full_text, parsed.subject or "", parsed.sender_name or ""):
        value.encode("utf-8")
    for attachment in parsed.attachments:
        assert attachment.size_bytes >= 0


@PROPERTY_SETTINGS
@given(st.binary(max_size=4096))
def test_property_arbitrary_bytes(raw: bytes) -> None:
    check_result(raw)


@PROPERTY_SETTINGS
@given(st.binary(max_size=2048), st.integers(min_value=0), st.booleans())
def test_property_bytes_spliced_into_valid_message(
    noise: bytes, position: int, overwrite: bool
) -> None:
    position %= len(VALID_MESSAGE) + 1
    rest = position + (len(noise) if overwrite else 0)
    check_result(VALID_MESSAGE[:position] + noise + VALID_MESSAGE[rest:])


@PROPERTY_SETTINGS
@given(st.binary(max_size=2048))
def test_property_bytes_appended_to_valid_message(noise: bytes) -> None:
    check_result(VALID_MESSAGE + noise)


CHARSETS = [
    "utf-8",
    "iso-8859-1",
    "windows-1252",
    "shift_jis",
    "iso-2022-jp",
    "koi8-r",
    "us-ascii",
    "utf-16",
    "utf-7",
    "gb2312",
    "x-unknown",
    "punycode",
    "idna",
    "rot13",
    "",
]
CONTENT_TYPES = [
    "text/plain",
    "text/html",
    "text/plain; format=flowed",
    'multipart/mixed; boundary="b"',
    "application/octet-stream",
    "",
]
ENCODINGS = ["7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "bogus", ""]
header_text = st.text(max_size=60)


def encode_text(text: str, charset: str) -> bytes:
    try:
        return text.encode(charset or "utf-8", errors="replace")
    except (LookupError, UnicodeError, TypeError):
        return text.encode("utf-8", errors="surrogatepass")


def header_value(text: str, charset: str, style: int) -> bytes:
    if style == 0:
        return text.encode("utf-8", errors="surrogatepass")
    data = encode_text(text, charset)
    if style == 1:
        return f"=?{charset or 'utf-8'}?B?{base64.b64encode(data).decode()}?=".encode()
    return b"=?" + charset.encode() + b"?Q?" + quopri.encodestring(data, header=True) + b"?="


@st.composite
def random_messages(draw: st.DrawFn) -> bytes:
    charset = draw(st.sampled_from(CHARSETS))
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    cte = draw(st.sampled_from(ENCODINGS))
    style = draw(st.integers(min_value=0, max_value=2))
    name = draw(header_text)
    address = draw(st.one_of(st.emails(), header_text))
    sender = draw(
        st.sampled_from(
            [f"{name} <{address}>", address, f'"{name}" <{address}>', f"{address} ({name})"]
        )
    )
    headers = [
        b"From: " + header_value(sender, charset, 0 if "@" in sender and style else style),
        b"To: " + header_value(draw(header_text), charset, style),
        b"Subject: " + header_value(draw(header_text), charset, style),
        b"Date: " + draw(header_text).encode("utf-8", "surrogatepass"),
        b"Message-ID: " + draw(header_text).encode("utf-8", "surrogatepass"),
        b"References: " + draw(header_text).encode("utf-8", "surrogatepass"),
    ]
    if content_type:
        params = f"; charset={charset}" if charset else ""
        headers.append(f"Content-Type: {content_type}{params}".encode())
    if cte:
        headers.append(f"Content-Transfer-Encoding: {cte}".encode())
    text = draw(st.text(max_size=400))
    if content_type == "text/html":
        text = f"<p>{text}</p>"
    body = encode_text(text, charset)
    if cte == "base64":
        body = base64.encodebytes(body)
    elif cte == "quoted-printable":
        body = quopri.encodestring(body)
    if content_type.startswith("multipart"):
        body = (
            b"--b\r\nContent-Type: text/plain; charset=" + charset.encode() + b"\r\n\r\n"
            + body + b"\r\n--b\r\nContent-Type: application/pdf\r\n"
            b'Content-Disposition: attachment; filename="' + header_value(name, charset, style)
            + b'"\r\n\r\n%PDF\r\n--b--\r\n'
        )  # fmt: skip
    return b"\r\n".join(headers) + b"\r\n\r\n" + body


@PROPERTY_SETTINGS
@given(random_messages())
def test_property_random_headers_text_and_charsets(raw: bytes) -> None:
    check_result(raw)


@PROPERTY_SETTINGS
@given(st.text(max_size=300), st.sampled_from(CHARSETS[:10]))
def test_property_valid_sender_and_text_round_trip(text: str, charset: str) -> None:
    body = encode_text(text, charset)
    raw = raw_message(base64.encodebytes(body), charset=charset, cte="base64")
    parsed = parse_or_reason(raw)
    if isinstance(parsed, str):
        assert parsed == "message has no text content"
        return
    assert parsed.sender_address == "jane@example.com"
    assert parsed.text


MARKER_LINES = [
    "> quoted",
    ">",
    "On Mon, 3 Nov 2025 at 10:02, Support <support@acme.com> wrote:",
    "On Mon, 3 Nov 2025 at 10:02, Support <",
    "support@acme.com> wrote:",
    "Le lun. 3 nov. 2025 à 10:02, X a écrit :",
    "-----Original Message-----",
    "________________________________",
    "From: Support <support@acme.com>",
    "Sent: Monday",
    "To: Jane",
    "Subject: Hi",
    "-- ",
    "--",
    "Sent from my iPhone",
    "Regards,",
    "Thanks, Jane",
    "Jane Doe",
    "This email and any attachments are confidential.",
    "",
    "   ",
    "\r",
]
marker_texts = st.lists(
    st.one_of(st.sampled_from(MARKER_LINES), st.text(max_size=40)), max_size=40
).map("\n".join)


@PROPERTY_SETTINGS
@given(st.one_of(st.text(), marker_texts))
def test_property_strip_quoted_reply_never_grows(text: str) -> None:
    assert len(strip_quoted_reply(text)) <= len(text)


@PROPERTY_SETTINGS
@given(st.one_of(st.text(), marker_texts))
def test_property_strip_signature_never_grows(text: str) -> None:
    result = strip_signature(text)
    assert len(result) <= len(text)
    if any(ch.isalnum() for ch in text):
        assert result


@PROPERTY_SETTINGS
@given(
    st.one_of(
        st.text(),
        st.lists(
            st.sampled_from(
                ["<p>", "</p>", "<br>", "<li>", "<blockquote>", "</blockquote>", "<pre>",
                 "</pre>", "<div id=appendonsend>", "<!--", "-->", "<![", "&amp;", "&#", "x",
                 " ", "\n", "<td>", "<script>", "</script>", "<"]
            ),
            max_size=60,
        ).map("".join),
    )
)  # fmt: skip
def test_property_html_to_text_never_raises(html: str) -> None:
    result = html_to_text(html)
    assert "\n\n\n" not in result
    assert result == result.strip()
