"""Amounts, references and language found in customer messages."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.classifier.extraction import (
    MAX_AMOUNTS,
    MAX_REFERENCES,
    detect_language,
    extract_amounts,
    extract_facts,
    extract_references,
)
from services.common.messages import Facts, Money, Reference, ReferenceKind


def amounts(text: str) -> list[tuple[float, str | None, str]]:
    return [(money.amount, money.currency, money.text) for money in extract_amounts(text)]


def references(text: str) -> list[tuple[str, str]]:
    return [(reference.kind.value, reference.value) for reference in extract_references(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("You charged me £49.99 twice.", [(49.99, "GBP", "£49.99")]),
        ("A $1,200 repair bill for a fridge?", [(1200.0, "USD", "$1,200")]),
        ("The fee was €40, not 25.", [(40.0, "EUR", "€40")]),
        ("Ich habe 40€ bezahlt", [(40.0, "EUR", "40€")]),
        ("Refund EUR 40 please", [(40.0, "EUR", "EUR 40")]),
        ("they kept 40 euros of my deposit", [(40.0, "EUR", "40 euros")]),
        ("charged USD 12.50 for shipping", [(12.5, "USD", "USD 12.50")]),
        ("a 12.50 GBP admin fee", [(12.5, "GBP", "12.50 GBP")]),
        ("I lost 100 dollars on this", [(100.0, "USD", "100 dollars")]),
        ("a £1.2k bill for one month", [(1200.0, "GBP", "£1.2k")]),
        ("it cost me $2k to fix", [(2000.0, "USD", "$2k")]),
        ("J'ai payé 49,99 € pour rien", [(49.99, "EUR", "49,99 €")]),
        ("Paguei R$ 50 a mais", [(50.0, "BRL", "R$ 50")]),
        ("charged A$30 and then C$ 12", [(30.0, "AUD", "A$30"), (12.0, "CAD", "C$ 12")]),
        ("a NZ$75 fee", [(75.0, "NZD", "NZ$75")]),
        ("¥5000 for a late fee", [(5000.0, "JPY", "¥5000")]),
        ("₹250 and Rs. 500 deducted", [(250.0, "INR", "₹250"), (500.0, "INR", "Rs. 500")]),
        (
            "Die Rechnung war 1.234,56 € statt 1.500 €",
            [
                (1234.56, "EUR", "1.234,56 €"),
                (1500.0, "EUR", "1.500 €"),
            ],
        ),
        ("£5 million in fines should follow", [(5_000_000.0, "GBP", "£5 million")]),
        ("I owe 20 quid at most", [(20.0, "GBP", "20 quid")]),
        (
            "They took {$100.00} from my account XXXX on XX/XX/2019.",
            [(100.0, "USD", "$100.00")],
        ),
        (
            "Charged £20, then £35.50, then £20 again.",
            [(20.0, "GBP", "£20"), (35.5, "GBP", "£35.50")],
        ),
        ("Refund due 12.05.2024 EUR 40", [(40.0, "EUR", "EUR 40")]),
        ("on 12/05/2024 £ 40 was taken", [(40.0, "GBP", "£ 40")]),
        ("2024-05-01 $30 fee", [(30.0, "USD", "$30")]),
        ("40€ 50€", [(40.0, "EUR", "40€"), (50.0, "EUR", "50€")]),
    ],
)
def test_amounts(text: str, expected: list[tuple[float, str | None, str]]) -> None:
    assert amounts(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "I have called 14 times about 3 missing parcels.",
        "Delivery was promised for 12/05/2024 and again for 2024-06-01.",
        "Call me on 07700 900123 or +44 20 7946 0958.",
        "I've been a customer since 2019.",
        "Order #A-55812 arrived with 2 of 5 items.",
        "The 4K TV is 55 inches and uses 120W.",
        "",
    ],
)
def test_numbers_without_currency_are_not_amounts(text: str) -> None:
    assert extract_amounts(text) == ()


def test_amount_inside_a_reference_is_not_an_amount() -> None:
    assert amounts("Please quote ref USD123456 when you reply.") == []
    assert references("Please quote ref USD123456 when you reply.") == [("other", "USD123456")]


def test_amount_is_not_a_reference() -> None:
    assert amounts("Invoice 1200 USD was wrong.") == [(1200.0, "USD", "1200 USD")]
    assert references("Invoice 1200 USD was wrong.") == []


def test_amounts_are_capped() -> None:
    text = " ".join(f"£{value}" for value in range(1, 31))
    found = extract_amounts(text)
    assert len(found) == MAX_AMOUNTS
    assert [money.amount for money in found] == [float(value) for value in range(1, 21)]


def test_amounts_have_short_text_and_non_negative_value() -> None:
    for money in extract_amounts("a refund of -£40 and a " + "9" * 80 + " dollars fee"):
        assert money.amount >= 0
        assert len(money.text) <= 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Where is order #A-55812?", [("order", "A-55812")]),
        ("order no. 123456 never came", [("order", "123456")]),
        ("Order number: 88-1234-99", [("order", "88-1234-99")]),
        ("Subject: Duplicate charge on account 44120387", [("account", "44120387")]),
        ("acct no 1234-5678", [("account", "1234-5678")]),
        ("my customer number is 99881234", [("account", "99881234")]),
        ("booking ref QX7T9P for Friday", [("booking", "QX7T9P")]),
        ("reservation code ABC123", [("booking", "ABC123")]),
        ("PNR XYZ123 was cancelled", [("booking", "XYZ123")]),
        ("booking reference QXTTPA", [("booking", "QXTTPA")]),
        ("confirmation number 5521-XY", [("booking", "5521-XY")]),
        ("invoice INV-2024-001 is wrong", [("invoice", "INV-2024-001")]),
        ("ticket #4521 is still open", [("ticket", "4521")]),
        ("case number 00012345", [("ticket", "00012345")]),
        ("complaint ref CR-7781", [("ticket", "CR-7781")]),
        ("status of claim CL-33019?", [("ticket", "CL-33019")]),
        ("tracking number 1Z999AA10123456784", [("tracking", "1Z999AA10123456784")]),
        ("parcel ID 99887766 shows delivered", [("tracking", "99887766")]),
        ("Ref: 55-AB-12", [("other", "55-AB-12")]),
        ("your reference 778899", [("other", "778899")]),
        (
            "Order 12345678, then invoice INV-77 and order 12345678 again",
            [("order", "12345678"), ("invoice", "INV-77")],
        ),
    ],
)
def test_references(text: str, expected: list[tuple[str, str]]) -> None:
    assert references(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "I've been a customer since 2019 and my account since 2015.",
        "My order was 123 days late.",
        "In order to complain I had to call 07700 900123.",
        "Account number 07700900123 is my phone, sorry.",
        "order placed 12/05/2024",
        "The order of £45.99 never came.",
        "MY BOOKING REFERENCE IS WRONG",
        "They took it from my account XXXXXXXX.",
        "The case is closed, the ticket was cheap, the booking was fine.",
        "",
    ],
)
def test_words_years_dates_phones_and_amounts_are_not_references(text: str) -> None:
    assert extract_references(text) == ()


def test_references_are_capped_and_short() -> None:
    text = " ".join(f"ticket #{value:05d}" for value in range(30))
    found = extract_references(text)
    assert len(found) == MAX_REFERENCES
    assert all(len(reference.value) <= 64 for reference in found)
    assert references("order " + "A1" * 40) == []


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Where is my order? It was supposed to arrive last week.", "en"),
        ("Ma commande n'est jamais arrivée et personne ne répond à mes messages.", "fr"),
        ("Meine Bestellung ist nicht angekommen und niemand antwortet mir.", "de"),
        ("Mi pedido no ha llegado y nadie contesta a mis correos.", "es"),
        ("Mijn bestelling is niet aangekomen en niemand reageert op mijn berichten.", "nl"),
        ("A minha encomenda não chegou e ninguém responde às minhas mensagens.", "pt"),
        ("Il mio ordine non è mai arrivato e nessuno risponde ai miei messaggi.", "it"),
    ],
)
def test_language(text: str, code: str) -> None:
    detected, confidence = detect_language(text)
    assert detected == code
    assert confidence is not None
    assert 0.0 < confidence <= 1.0


def test_clear_sentences_are_confident() -> None:
    _, confidence = detect_language("Where is my order? It was supposed to arrive last week.")
    assert confidence is not None
    assert confidence > 0.9


@pytest.mark.parametrize("text", ["", "refund?", "🙄🙄🙄", "12345 !!!", "   ", "A"])
def test_too_little_text_has_no_language(text: str) -> None:
    assert detect_language(text) == (None, None)


def test_urls_and_handles_do_not_decide_the_language() -> None:
    detected, _ = detect_language(
        "@SuperSchnellVersand https://example.de/bestellung where is my parcel please"
    )
    assert detected == "en"


def test_facts_combine_everything() -> None:
    facts = extract_facts("Please refund the £62.40 you took twice from account 44120387.")
    assert facts == Facts(
        amounts=(Money(amount=62.4, currency="GBP", text="£62.40"),),
        references=(Reference(kind=ReferenceKind.ACCOUNT, value="44120387"),),
        language="en",
        language_confidence=facts.language_confidence,
    )
    assert facts.language_confidence is not None


ODD_TEXTS = (
    "",
    "\x00\x01\x1b[31m\x7f",
    "\ud800 lone surrogate £5",
    "🙄" * 1000,
    "order " * 20_000,
    "order #" + "1" * 100_000,
    "£" + "1," * 50_000,
    "1" * 100_000 + " euros",
    " " * 100_000 + "ref",
    "a" * 100_000,
    "x@" * 50_000,
    "ref:" + " " * 50_000 + "12345",
    "£1 01/01/2020 " * 1_500,
    "order 07700900123 " * 1_200,
    "invoice 1200 USD " * 1_200,
    "order #1234 " * 2_000,
)


@pytest.mark.parametrize("text", ODD_TEXTS, ids=range(len(ODD_TEXTS)))
def test_odd_input_is_safe_and_fast(text: str) -> None:
    started = time.perf_counter()
    facts = extract_facts(text)
    assert time.perf_counter() - started < 2.0
    assert isinstance(facts, Facts)


def check_facts(facts: Facts) -> None:
    assert len(facts.amounts) <= MAX_AMOUNTS
    assert len(facts.references) <= MAX_REFERENCES
    for money in facts.amounts:
        assert math.isfinite(money.amount)
        assert money.amount >= 0
        assert len(money.text) <= 64
    for reference in facts.references:
        assert 0 < len(reference.value) <= 64
    assert (facts.language is None) == (facts.language_confidence is None)
    if facts.language_confidence is not None:
        assert 0.0 <= facts.language_confidence <= 1.0
    Facts.model_validate(facts.model_dump())


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_gives_valid_facts(text: str) -> None:
    check_facts(extract_facts(text))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [*"0123456789.,£$€¥₹ kmKAUSDRCGBPEeuro#-/:", "order ", "ref ", "euros", "\n"]
        ),
        max_size=120,
    ).map("".join)
)
def test_number_heavy_text_gives_valid_facts(text: str) -> None:
    check_facts(extract_facts(text))
