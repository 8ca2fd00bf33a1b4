"""Surface features of a message: each responds to what it is meant for and stays bounded."""

from __future__ import annotations

import math
import random
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.classifier.features import FEATURE_NAMES, feature_matrix, text_features

CALM = (
    "Hello, could you let me know when the replacement part for my washing machine will be "
    "dispatched? The engineer said it had been ordered. Kind regards, Priya"
)

SAMPLES = (
    CALM,
    "WHY IS MY ORDER STILL NOT HERE?!?! THIS IS RIDICULOUS!!!",
    "You useless idiots. I'll see you in court.",
    "Under the Consumer Rights Act 2015 s.23 I am entitled to a repair or a replacement.",
    "Wow, 3 weeks for a parcel, truly the speed of light 🙄",
    "refund?",
    "",
)


def features(text: str) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, text_features(text), strict=True))


def test_names_are_unique_and_one_per_column() -> None:
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert 20 <= len(FEATURE_NAMES) <= 40
    for text in SAMPLES:
        assert len(text_features(text)) == len(FEATURE_NAMES)


@pytest.mark.parametrize("text", SAMPLES)
def test_values_are_finite_and_within_unit_interval(text: str) -> None:
    for name, value in features(text).items():
        assert math.isfinite(value), name
        assert 0.0 <= value <= 1.0, name


def test_matrix_has_one_row_per_text() -> None:
    matrix = feature_matrix(list(SAMPLES))
    assert matrix.shape == (len(SAMPLES), len(FEATURE_NAMES))
    assert matrix.dtype == np.float32
    assert np.allclose(matrix[1], text_features(SAMPLES[1]))


def test_matrix_of_no_texts_is_empty() -> None:
    matrix = feature_matrix([])
    assert matrix.shape == (0, len(FEATURE_NAMES))
    assert matrix.dtype == np.float32


@pytest.mark.parametrize(
    ("text", "name", "at_least"),
    [
        ("WHY IS MY ORDER STILL NOT HERE, THIS IS RIDICULOUS", "caps_ratio", 0.9),
        ("WHY IS MY ORDER STILL NOT HERE, THIS IS RIDICULOUS", "shouted_words", 0.5),
        ("Still waiting!!! Unbelievable!", "exclamations", 0.4),
        ("Still waiting!!! Seriously?!", "exclaim_runs", 0.4),
        ("Where is it? When will it come? Who do I ask?", "questions", 0.6),
        ("Where is my refund?", "ends_with_question", 1.0),
        ("this f***ing phone, what a load of sh!t, wtf", "profanity", 1.0),
        ("The bloody thing broke again, this is bullshit", "profanity", 0.6),
        ("You are useless, incompetent clowns. Pathetic.", "insults", 1.0),
        ("What a bunch of idiots you people are", "insults", 0.6),
        ("See you in court. My solicitor will be in touch.", "threats", 0.6),
        ("I will go to the ombudsman, trading standards and social media", "threats", 1.0),
        ("Under the Consumer Rights Act 2015 s.23 I am entitled to a repair.", "legal", 1.0),
        ("That is a breach of contract and of GDPR Article 15.", "legal", 0.6),
        (
            "Firmware 2.1 broke the router: DNS fails and latency is 300ms on 5GHz.",
            "technical",
            1.0,
        ),
        ("As an electrical engineer I know how these boilers work.", "expertise", 1.0),
        ("I work in IT so I know exactly what the problem is.", "expertise", 1.0),
        ("I paid £49.99 and then another 20 euros and USD 12", "money", 0.6),
        ("I want this sorted immediately. Get me your manager right now.", "demand", 0.8),
        ("Refund me by end of day or I will cancel.", "demand", 0.4),
        ("I don't care what your policy says. I've told you three times.", "stubborn", 1.0),
        ("For the last time, no excuses, I refuse to pay.", "stubborn", 1.0),
        ("This always happens to me. Every single time. Typical. Fed up.", "whine", 0.8),
        ("Oh brilliant, thanks for nothing. What a joke lol", "sarcasm", 1.0),
        ('Your "express" delivery took 3 weeks, 10/10 would wait again', "sarcasm", 0.6),
        ("Wow, truly the speed of light 🙄", "sarcasm", 0.6),
        (
            "My husband and I took our daughter and the dog on holiday, anyway long story, "
            "by the way the weather was awful",
            "personal_story",
            0.8,
        ),
        ("Hi, please could you help? Thank you, kind regards", "politeness", 1.0),
        ("Excellent service, so helpful, I would recommend you to anyone", "praise", 0.7),
        (
            "It would be great if you could add an option to pay by card. Just a suggestion.",
            "suggestion",
            1.0,
        ),
        ("Great job 👍👍🙄😂", "emoji", 0.8),
        ('They said "next day" and "guaranteed" and "priority"', "quotes", 1.0),
        ("I want a refund. I want a refund. I want a refund.", "repeated_sentences", 0.6),
        ("refund refund refund refund refund now", "repeated_words", 0.5),
        ("I told my bank I want my money", "first_person", 0.8),
        ("You said you would call, your team never did", "second_person", 0.8),
        ("refund?", "very_short", 1.0),
        ("still broken", "very_short", 1.0),
        (" ".join(["word"] * 130), "long_text", 1.0),
    ],
)
def test_feature_responds_to_its_signal(text: str, name: str, at_least: float) -> None:
    assert features(text)[name] >= at_least


QUIET_ON_CALM = (
    "caps_ratio",
    "shouted_words",
    "exclamations",
    "exclaim_runs",
    "profanity",
    "insults",
    "threats",
    "legal",
    "technical",
    "expertise",
    "money",
    "stubborn",
    "whine",
    "sarcasm",
    "personal_story",
    "emoji",
    "quotes",
    "repeated_sentences",
    "very_short",
    "long_text",
)


@pytest.mark.parametrize("name", QUIET_ON_CALM)
def test_calm_message_stays_low(name: str) -> None:
    assert features(CALM)[name] <= 0.2


def test_acronyms_are_not_shouting() -> None:
    values = features("My ATM card PIN and the USB stick from the UK did not work, OK?")
    assert values["shouted_words"] == 0.0
    assert values["caps_ratio"] == 0.0


def test_bare_numbers_are_not_money() -> None:
    values = features("I ordered 3 chairs on 12/05/2024 and 2 arrived")
    assert values["money"] == 0.0
    assert values["numbers"] > 0.0


def test_words_match_whole_words_only() -> None:
    values = features("The contact at the hotel was courteous; I passed the class.")
    assert values["legal"] == 0.0
    assert values["profanity"] == 0.0


def test_typographic_quotes_read_as_plain_ones() -> None:
    assert features("I don\u2019t care what you say")["stubborn"] > 0.0
    assert features("Your \u201cpremium\u201d service")["sarcasm"] > 0.0


def test_length_features_grow_with_length() -> None:
    short, long = features("late again"), features(" ".join(["late again"] * 200))
    assert short["log_chars"] < long["log_chars"] <= 1.0
    assert short["log_words"] < long["log_words"] <= 1.0


ODD_TEXTS = (
    "",
    " ",
    "\n\t\r",
    "🙄🙄🙄",
    "\x00\x01\x1b[31m\x7f",
    "\ud800 lone surrogate",
    "a" * 100_000,
    "!" * 100_000,
    "?!" * 50_000,
    "1" * 100_000,
    "1,0" * 30_000,
    "£" * 50_000,
    "f*" * 50_000,
    "s. 1" * 25_000,
    '"' * 100_000,
    "I told you " * 10_000,
    "AAAA " * 20_000,
    ":)" * 50_000,
    "word " * 20_000,
)


@pytest.mark.parametrize("text", ODD_TEXTS, ids=range(len(ODD_TEXTS)))
def test_odd_input_is_bounded_and_fast(text: str) -> None:
    started = time.perf_counter()
    values = text_features(text)
    assert time.perf_counter() - started < 1.0
    assert len(values) == len(FEATURE_NAMES)
    assert all(math.isfinite(value) and 0.0 <= value <= 1.0 for value in values)


def test_matrix_is_fast() -> None:
    vocabulary = " ".join(
        (
            "the my order refund still not arrived I want manager today £40 again always please",
            "thanks court useless ATM router firmware husband holiday great suggestion why ?!",
            "Consumer Rights Act s.23 told you three times 🙄 lol NOW wtf it would be nice",
        )
    ).split()
    rng = random.Random(7)
    texts = [" ".join(rng.choices(vocabulary, k=rng.randint(5, 300))) for _ in range(2_000)]
    started = time.perf_counter()
    matrix = feature_matrix(texts)
    assert time.perf_counter() - started < 3.0
    assert matrix.shape == (2_000, len(FEATURE_NAMES))


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_gives_bounded_values(text: str) -> None:
    values = text_features(text)
    assert len(values) == len(FEATURE_NAMES)
    assert all(math.isfinite(value) and 0.0 <= value <= 1.0 for value in values)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(list("aF*!?£$1. ,'\"sHI\n🙄:)#")), max_size=80)))
def test_symbol_heavy_texts_give_bounded_matrix(texts: list[str]) -> None:
    matrix = feature_matrix(texts)
    assert matrix.shape == (len(texts), len(FEATURE_NAMES))
    assert np.isfinite(matrix).all()
    assert (matrix >= 0.0).all()
    assert (matrix <= 1.0).all()
