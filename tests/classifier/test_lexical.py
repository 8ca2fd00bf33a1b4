"""The n-gram heads and their blend with the embedding heads."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from services.classifier.lexical import (
    LexicalError,
    LexicalHeads,
    blend,
    fit_lexical_head,
    fit_vectorizer,
)
from services.classifier.model import Estimator, Matrix, ModelError, ModelMetadata, TriageModel

TEXTS = [
    *(f"the debt collector keeps calling me {n} times a day" for n in range(8)),
    *(f"I never got a validation letter for this debt, case {n}" for n in range(8)),
]
LABELS = ["staff_conduct"] * 8 + ["communication"] * 8


def lexical_heads(weight: float = 0.5) -> LexicalHeads:
    vectorizer, features = fit_vectorizer(TEXTS)
    head = fit_lexical_head(features, LABELS, c=10.0, seed=1)
    return LexicalHeads(vectorizer=vectorizer, heads={"category": head}, weight=weight)


class FixedHead:
    """An embedding head that always answers the same probabilities."""

    def __init__(self, classes: list[str], row: list[float]) -> None:
        self.classes_ = np.asarray(classes)
        self._row = np.asarray(row)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.tile(self._row, (len(x), 1))


class ZeroEmbedder:
    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> Matrix:
        return np.zeros((len(texts), 4), dtype=np.float32)


def model_with(lexical: LexicalHeads | None) -> TriageModel:
    from services.classifier.features import FEATURE_NAMES

    heads: dict[str, Estimator] = {
        "sentiment": FixedHead(["negative", "neutral", "positive"], [0.6, 0.3, 0.1]),
        "category": FixedHead(["communication", "staff_conduct"], [0.5, 0.5]),
        "difficult": FixedHead(["angry", "none"], [0.2, 0.8]),
    }
    metadata = ModelMetadata(
        version="test",
        created_at="2026-11-24T00:00:00+00:00",
        embedding_dim=4,
        feature_names=list(FEATURE_NAMES),
        labels={tag: [str(c) for c in head.classes_] for tag, head in heads.items()},
        thresholds={"sentiment": 0.0, "category": 0.0, "difficult": 0.0},
    )
    return TriageModel(embedder=ZeroEmbedder(), heads=heads, metadata=metadata, lexical=lexical)


def test_the_lexical_head_reads_words_the_embedding_head_does_not() -> None:
    model = model_with(lexical_heads())
    calls, letter = model.predict(
        [
            "they keep calling me at work",
            "no validation letter ever came",
        ]
    )
    assert calls.category.label == "staff_conduct"
    assert letter.category.label == "communication"
    # An even blend: half of the undecided embedding head, half of the lexical head.
    assert 0.5 < calls.category.probability < 0.75
    # Tags without a lexical head keep the embedding head's probabilities.
    assert calls.sentiment.probability == pytest.approx(0.6)


def test_a_weight_of_zero_leaves_the_embedding_head_alone() -> None:
    (prediction,) = model_with(lexical_heads(weight=0.0)).predict(["they keep calling me"])
    assert prediction.category.probability == pytest.approx(0.5)


def test_blend_is_the_weighted_mean() -> None:
    mixed = blend(np.asarray([[1.0, 0.0]]), np.asarray([[0.0, 1.0]]), 0.25)
    assert mixed.tolist() == [[0.75, 0.25]]


def test_lexical_heads_must_share_the_embedding_heads_labels() -> None:
    other = LexicalHeads(
        vectorizer=lexical_heads().vectorizer,
        heads={"difficult": lexical_heads().heads["category"]},
        weight=0.5,
    )
    with pytest.raises(ModelError, match="differ from the embedding head's"):
        model_with(other)
    with pytest.raises(LexicalError, match="within"):
        LexicalHeads(vectorizer=None, heads={}, weight=1.5)


def test_a_saved_model_keeps_its_lexical_heads_and_checks_them(tmp_path: Path) -> None:
    model = model_with(lexical_heads())
    model.save(tmp_path)
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    assert metadata["lexical_sha256"]
    loaded = TriageModel.load(tmp_path, embedder=ZeroEmbedder())
    assert loaded.lexical is not None
    text = ["the collector keeps calling"]
    assert loaded.predict(text)[0].category == model.predict(text)[0].category

    (tmp_path / "lexical.joblib").write_bytes(b"not the saved heads")
    with pytest.raises(ModelError, match="checksum"):
        TriageModel.load(tmp_path, embedder=ZeroEmbedder())
    (tmp_path / "lexical.joblib").unlink()
    with pytest.raises(ModelError, match=r"no lexical\.joblib"):
        TriageModel.load(tmp_path, embedder=ZeroEmbedder())

    # A model saved without lexical heads leaves no stale file behind.
    model_with(None).save(tmp_path)
    assert not (tmp_path / "lexical.joblib").exists()
    assert TriageModel.load(tmp_path, embedder=ZeroEmbedder()).lexical is None


def test_the_vocabulary_keeps_rare_terms_only_on_large_data() -> None:
    vectorizer, _ = fit_vectorizer(["zxqv once", "plain text", "plain words"])
    words = dict(vectorizer.transformer_list)["words"]
    assert "zxqv" in words.vocabulary_
    assert not hasattr(words, "stop_words_")


def test_training_fits_lexical_heads_unless_their_weight_is_zero() -> None:
    from services.classifier.training import load_examples, train

    corpus = Path(__file__).parents[2] / "services" / "classifier" / "corpus"
    examples = load_examples(sorted(corpus.glob("*.jsonl")))[::6]
    blended = train(examples, embedder=ZeroEmbedder(), head_kinds=("logreg",))
    assert blended.model.lexical is not None
    assert set(blended.model.lexical.heads) == {"sentiment", "category", "difficult"}
    lexical = blended.model.metadata.hyperparameters["lexical"]
    assert lexical["weight"] == 0.5
    assert lexical["features"] > 1000

    plain = train(examples, embedder=ZeroEmbedder(), head_kinds=("logreg",), lexical_weight=0.0)
    assert plain.model.lexical is None
    assert plain.model.metadata.hyperparameters["lexical"] == {"weight": 0.0}
    # With a blind embedding, the words are what tells the categories apart.
    gain = blended.report["category"]["macro_f1"] - plain.report["category"]["macro_f1"]
    assert gain > 0.2
