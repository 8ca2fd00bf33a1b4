"""The embedding the heads read: pooled encoder layers, the same from torch and ONNX."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from services.classifier.model import (
    EMBEDDING_DIM,
    EMBEDDING_LAYERS,
    LAYER_WIDTH,
    Embedder,
    Estimator,
    Matrix,
    ModelError,
    ModelMetadata,
    TriageModel,
    pooled_layers,
)
from tests.classifier.test_lexical import FixedHead

TEXTS = [
    "You charged me twice and nobody answers the phone!!",
    "thanks, all sorted",
    "Dear team,\n\nmy parcel 4471 is a week late. Please tell me when it will come.\n\nBest, Ana",
]


def _parts(matrix: Matrix) -> list[Matrix]:
    return [matrix[:, i : i + LAYER_WIDTH] for i in range(0, matrix.shape[1], LAYER_WIDTH)]


def test_pooling_ignores_padding_and_normalises_each_part() -> None:
    sentence = np.asarray([[3.0, 4.0]], dtype=np.float32)
    layer = np.asarray([[[1.0, 0.0], [0.0, 1.0], [50.0, 50.0]]], dtype=np.float32)
    mask = np.asarray([[1.0, 1.0, 0.0]], dtype=np.float32)
    pooled = pooled_layers(sentence, [layer], mask)
    np.testing.assert_allclose(pooled, [[0.6, 0.8, 2**-0.5, 2**-0.5]], rtol=1e-6)


@pytest.fixture(scope="module")
def torch_embeddings() -> Matrix:
    return Embedder().encode(TEXTS, batch_size=2)


def test_the_embedding_holds_every_layer_normalised(torch_embeddings: Matrix) -> None:
    assert torch_embeddings.shape == (len(TEXTS), EMBEDDING_DIM)
    assert len(_parts(torch_embeddings)) == len(EMBEDDING_LAYERS)
    for part in _parts(torch_embeddings):
        np.testing.assert_allclose(np.linalg.norm(part, axis=1), 1.0, rtol=1e-5)
    # Batching and order do not change a text's embedding.
    alone = Embedder().encode(TEXTS[2:], batch_size=1)
    np.testing.assert_allclose(alone[0], torch_embeddings[2], atol=1e-5)


def test_onnx_int8_embeds_like_torch(torch_embeddings: Matrix, tmp_path: Path) -> None:
    from services.classifier.onnx_backend import INT8_NAME, OnnxEmbedder

    onnx = OnnxEmbedder(tmp_path / INT8_NAME).encode(TEXTS)
    assert onnx.shape == torch_embeddings.shape
    for ours, reference in zip(_parts(onnx), _parts(torch_embeddings), strict=True):
        assert (ours * reference).sum(axis=1).min() > 0.95


class OneLayerEmbedder:
    layers = (6,)

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> Matrix:
        return np.zeros((len(texts), LAYER_WIDTH), dtype=np.float32)


def test_a_model_refuses_an_embedder_of_other_layers() -> None:
    from services.classifier.features import FEATURE_NAMES

    heads: dict[str, Estimator] = {
        "sentiment": FixedHead(["negative", "positive"], [0.5, 0.5]),
        "category": FixedHead(["billing", "delay"], [0.5, 0.5]),
        "difficult": FixedHead(["angry", "none"], [0.5, 0.5]),
    }
    metadata = ModelMetadata(
        version="test",
        created_at="2026-11-24T00:00:00+00:00",
        embedding_dim=EMBEDDING_DIM,
        embedding_layers=list(EMBEDDING_LAYERS),
        feature_names=list(FEATURE_NAMES),
        labels={tag: [str(c) for c in head.classes_] for tag, head in heads.items()},
        thresholds={"sentiment": 0.0, "category": 0.0, "difficult": 0.0},
    )
    with pytest.raises(ModelError, match="retrain"):
        TriageModel(embedder=OneLayerEmbedder(), heads=heads, metadata=metadata)
