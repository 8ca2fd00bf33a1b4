"""The model's pure parts, its loading checks, and the shipped model on plain examples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from services.classifier.model import (
    DEFAULT_MODEL_DIR,
    LABELS,
    METADATA_FILE,
    ModelError,
    TriageModel,
    padded,
    review_reason,
    softmax,
    sub_batches,
)


def test_softmax_rows_sum_to_one_and_temperature_flattens_them() -> None:
    logits = np.asarray([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    sharp, flat = softmax(logits, 1.0), softmax(logits, 3.0)
    assert np.allclose(sharp.sum(axis=1), 1)
    assert np.allclose(flat.sum(axis=1), 1)
    assert flat[0].max() < sharp[0].max()
    assert np.allclose(flat[1], 1 / 3)
    assert np.isfinite(softmax(np.asarray([[1e4, -1e4]], dtype=np.float32))).all()


def test_sub_batches_keep_short_texts_away_from_long_ones() -> None:
    lengths = [120, 8, 9, 118, 10, 7, 121, 11]
    groups = sub_batches(lengths, budget=256, most=32)
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))
    for group in groups:
        assert len(group) * max(lengths[i] for i in group) <= 256 or len(group) == 1
    # The five short texts go together; the long ones are not padded with them.
    assert sorted(groups[0]) == [1, 2, 4, 5, 7]
    assert all(len(group) <= 2 for group in sub_batches(lengths, budget=10_000, most=2))
    assert sub_batches([], budget=256, most=4) == []


def test_padding_masks_what_was_added() -> None:
    ids, mask = padded([[101, 5, 102], [101, 102]])
    assert ids.tolist() == [[101, 5, 102], [101, 102, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0]]


@pytest.mark.parametrize(
    ("text", "language", "confidence", "reason"),
    [
        ("", None, None, "too short to tag"),
        ("refund?", None, None, "too short to tag"),
        ("   !!!  ", None, None, "too short to tag"),
        ("Où est mon colis ? Je l'attends depuis deux semaines.", "fr", 0.99, "language fr"),
        ("Where is my parcel? I have waited two weeks.", "en", 0.99, None),
        ("parcel late again", "it", 0.4, None),
        ("parcel late again", None, None, None),
    ],
)
def test_review_reason(
    text: str, language: str | None, confidence: float | None, reason: str | None
) -> None:
    assert review_reason(text, language, confidence) == reason


@pytest.fixture(scope="module")
def shipped() -> TriageModel:
    return TriageModel.load()


def test_loading_checks_files_and_labels(tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, copy, ignore=shutil.ignore_patterns("report"))
    (copy / "encoder.npz").write_bytes(b"not the saved weights")
    with pytest.raises(ModelError, match="checksum"):
        TriageModel.load(copy, backend="torch")
    (copy / "model.onnx").unlink()
    with pytest.raises(ModelError, match=r"no model\.onnx"):
        TriageModel.load(copy)
    metadata = json.loads((copy / METADATA_FILE).read_text())
    metadata["labels"]["category"] = ["billing", "praise"]
    (copy / METADATA_FILE).write_text(json.dumps(metadata))
    shutil.copy(DEFAULT_MODEL_DIR / "model.onnx", copy / "model.onnx")
    with pytest.raises(ModelError, match="labels"):
        TriageModel.load(copy)
    with pytest.raises(ModelError, match="not a model directory"):
        TriageModel.load(tmp_path)


def test_shipped_model_tags_plain_complaints(shipped: TriageModel) -> None:
    examples = {
        "My order arrived broken.": "product_fault",
        "The shoes I ordered came in the wrong size and one has a split sole.": "product_fault",
        "You took the payment twice for the same order, I want one of them back.": "billing",
        "My parcel was due last Tuesday and it still has not arrived.": "delay",
        "Thank you so much, Priya sorted everything out in five minutes!": "praise",
        "It would be great if the app let me pick a delivery slot.": "suggestion",
        "Someone used my card details for purchases I never made.": "trust_privacy",
    }
    predictions = shipped.predict(list(examples))
    found = {text: p.category.label for text, p in zip(examples, predictions, strict=True)}
    assert found == examples
    for prediction in predictions:
        assert prediction.review_reason is None


def test_shipped_model_marks_what_it_was_not_trained_for(shipped: TriageModel) -> None:
    texts = [
        "refund",
        "",
        "Mein Paket ist seit zwei Wochen nicht angekommen und niemand antwortet mir.",
        "My parcel has not arrived in two weeks and nobody answers me.",
    ]
    predictions = shipped.predict(texts)
    assert [p.review_reason for p in predictions] == [
        "too short to tag",
        "too short to tag",
        "language de",
        None,
    ]
    assert [p.needs_review for p in predictions[:3]] == [True, True, True]
    for prediction in predictions:
        for tag in LABELS:
            tag_result = getattr(prediction, tag)
            assert tag_result.label in LABELS[tag]
            assert 0 <= tag_result.probability <= 1


def test_the_probabilities_of_a_text_do_not_depend_on_its_batch(shipped: TriageModel) -> None:
    texts = [
        "short one",
        "A much longer complaint about a washing machine that broke after two weeks of use "
        "and an engineer who never came on the day he was booked for.",
        "Where is my refund?",
    ]
    together = shipped.outputs(texts)[1]
    alone = shipped.outputs(texts[1:2])[1]
    for tag in LABELS:
        assert np.allclose(together[tag][1], alone[tag][0], atol=1e-4)


def test_a_huge_message_costs_no_more_than_the_tokens_the_model_reads(
    shipped: TriageModel,
) -> None:
    huge = "My parcel never came and nobody answers. " * 2500
    assert len(huge) > 100_000
    (ids,) = shipped.token_ids([huge])
    assert len(ids) == shipped.metadata.max_tokens
    (prediction,) = shipped.predict([huge])
    assert prediction.category.label in LABELS["category"]
