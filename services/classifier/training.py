"""Training and evaluation of the triage model from labelled JSON Lines.

Each line has ``text`` and any of ``label_sentiment``, ``label_category``, ``label_difficult``
(optionally ``source``). Every head is trained on the lines that carry its label. A held-out
share, split by text so repeated texts never straddle the split, gives the report: per-label
precision, recall and F1, macro averages, confusion matrices, and the precision each confidence
threshold buys.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, ValidationError

from services.classifier.features import FEATURE_NAMES
from services.classifier.lexical import LexicalHeads, fit_lexical_head, fit_vectorizer
from services.classifier.model import (
    EMBEDDING_LAYERS,
    TAGS,
    Estimator,
    Matrix,
    ModelMetadata,
    SentenceEncoder,
    TagName,
    TriageModel,
    design_matrix,
)
from services.common.errors import TriageError
from services.common.messages import Category, DifficultType, Sentiment

CORPUS_SOURCE = "triage-corpus"
THRESHOLD_GRID = tuple(round(0.05 * step, 2) for step in range(20))
# Resamples behind the 95% intervals of the macro figures in a report.
BOOTSTRAP_RESAMPLES = 1000


class DataError(TriageError):
    """A training file is unreadable or has an invalid line; the message says where."""


class Example(BaseModel):
    """One labelled text."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    text: str
    label_sentiment: Sentiment | None = None
    label_category: Category | None = None
    label_difficult: DifficultType | None = None
    source: str = "unknown"

    def label(self, tag: TagName) -> str | None:
        """The example's label for a tag, if it has one."""
        value = {
            "sentiment": self.label_sentiment,
            "category": self.label_category,
            "difficult": self.label_difficult,
        }[tag]
        return value.value if value is not None else None


def load_examples(paths: Iterable[Path]) -> list[Example]:
    """Read JSON Lines files; the first bad line stops with its file and line number."""
    examples: list[Example] = []
    for path in paths:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read: {exc}") from exc
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                example = Example.model_validate_json(line)
            except ValidationError as exc:
                first = exc.errors(include_url=False, include_input=False)[0]
                where = ".".join(str(p) for p in first["loc"]) or "line"
                raise DataError(f"{path}:{number}: {where}: {first['msg']}") from None
            if example.text.strip():
                examples.append(example)
    if not examples:
        raise DataError("no examples in the given files")
    return examples


def text_key(text: str) -> str:
    """A stable key of a text, insensitive to case and spacing."""
    return hashlib.sha1(" ".join(text.lower().split()).encode()).hexdigest()  # noqa: S324


def holdout_split(
    examples: Sequence[Example], *, share: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Split by text key: the same text (in any file) is always on the same side."""
    train: list[Example] = []
    test: list[Example] = []
    for example in examples:
        digest = hashlib.sha256(f"{seed}:{text_key(example.text)}".encode()).digest()
        (test if digest[0] / 256 < share else train).append(example)
    return train, test


# Names the cached embeddings by what produced them, so a cache of another embedding is not read.
EMBEDDING_CACHE_NAME = "minilm-layers-" + "-".join(str(layer) for layer in EMBEDDING_LAYERS)


class EmbeddingCache:
    """Embeddings of texts already seen, kept on disk between training runs."""

    def __init__(self, directory: Path | None, *, name: str = EMBEDDING_CACHE_NAME) -> None:
        self._directory = directory
        self._keys_file = f"{name}.keys.json"
        self._vectors_file = f"{name}.vectors.npy"
        self._vectors: dict[str, npt.NDArray[np.float32]] = {}
        if directory is not None and (directory / self._keys_file).is_file():
            keys = json.loads((directory / self._keys_file).read_text())
            matrix = np.load(directory / self._vectors_file)
            self._vectors = dict(zip(keys, matrix, strict=True))

    def embed(
        self,
        texts: Sequence[str],
        encode: Callable[[Sequence[str]], Matrix],
        *,
        progress: Callable[[int], None] | None = None,
        chunk: int = 256,
    ) -> Matrix:
        """Embeddings of all texts, computing only the missing ones."""
        keys = [text_key(text) for text in texts]
        missing = sorted(
            {k: t for k, t in zip(keys, texts, strict=True) if k not in self._vectors}.items()
        )
        for start in range(0, len(missing), chunk):
            part = missing[start : start + chunk]
            vectors = encode([text for _, text in part])
            for (key, _), vector in zip(part, vectors, strict=True):
                self._vectors[key] = vector
            if progress is not None:
                progress(len(part))
        if progress is not None and not missing:
            progress(0)
        return np.stack([self._vectors[k] for k in keys]).astype(np.float32)

    def missing_count(self, texts: Sequence[str]) -> int:
        """How many distinct texts still need an embedding."""
        return len({text_key(t) for t in texts} - set(self._vectors))

    def save(self) -> None:
        """Write the cache."""
        if self._directory is None:
            return
        self._directory.mkdir(parents=True, exist_ok=True)
        keys = list(self._vectors)
        np.save(self._directory / self._vectors_file, np.stack([self._vectors[k] for k in keys]))
        (self._directory / self._keys_file).write_text(json.dumps(keys))


HEAD_KINDS = ("logreg", "svc", "mlp", "mlp_balanced", "vote")
# svc heads are accurate but weigh tens of megabytes, and on the project's data a vote never
# beat its best member on validation, so neither is tried by default.
DEFAULT_HEAD_KINDS = ("logreg", "mlp", "mlp_balanced")
VOTE_MEMBERS = ("logreg", "mlp")
# The n-gram heads' share of each tag's probabilities, and their inverse regularisation: on the
# project's data (5-fold cross-validation of the training share) an even blend beat either view
# alone on every tag.
DEFAULT_LEXICAL_WEIGHT = 0.5
DEFAULT_LEXICAL_C = 10.0


class SoftVote:
    """Calibrated heads whose probabilities are averaged: a linear and a non-linear view of
    the same features, steadier than either on data unlike the training set."""

    def __init__(self, members: Sequence[Estimator]) -> None:
        classes = [list(member.classes_) for member in members]
        if any(c != classes[0] for c in classes):
            raise ValueError("the members of a vote must share their classes")
        self.members = list(members)
        self.classes_ = members[0].classes_

    def predict_proba(self, x: Matrix) -> npt.NDArray[np.float64]:
        """The members' mean probabilities."""
        probabilities: npt.NDArray[np.float64] = np.mean(
            [member.predict_proba(x) for member in self.members], axis=0
        )
        return probabilities


def fit_head(
    x: Matrix, y: Sequence[str], *, kind: str = "logreg", c: float, seed: int
) -> Estimator:
    """A head of the given kind with sigmoid-calibrated probabilities.

    ``logreg``: multinomial logistic regression; ``svc``: RBF support-vector machine;
    ``mlp``: one hidden layer of 256 units; ``mlp_balanced``: the same with small classes
    weighed up to half the largest. The first two weigh classes by their inverse frequency.
    ``vote``: the mean of a ``logreg`` and an ``mlp`` head.
    """
    if kind == "vote":
        return SoftVote([fit_head(x, y, kind=member, c=c, seed=seed) for member in VOTE_MEMBERS])
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import SVC

    base: Any
    if kind == "logreg":
        base = LogisticRegression(C=c, max_iter=3000, class_weight="balanced", random_state=seed)
    elif kind == "svc":
        base = SVC(C=c, kernel="rbf", class_weight="balanced", random_state=seed)
    elif kind in ("mlp", "mlp_balanced"):
        base = MLPClassifier(
            hidden_layer_sizes=(256,),
            alpha=1e-3,
            early_stopping=True,
            max_iter=300,
            random_state=seed,
        )
    else:
        raise ValueError(f"unknown head kind {kind!r}; choose from {HEAD_KINDS}")
    counts = Counter(y)
    calibrated = CalibratedClassifierCV(
        base, method="sigmoid", cv=max(2, min(3, min(counts.values())))
    )
    if kind == "mlp_balanced":
        # The perceptron has no class weights: weigh small classes up to half the largest, so
        # labels with few examples still count.
        calibrated.fit(x, np.asarray(y), sample_weight=minority_weights(y))
    else:
        calibrated.fit(x, np.asarray(y))
    slim(calibrated)
    head: Estimator = calibrated
    return head


# What a fitted perceptron keeps only to go on training: the optimiser's moment estimates and
# the early-stopping copy of the weights (already in ``coefs_``). Four fifths of its size.
TRAINING_STATE = ("_optimizer", "_best_coefs", "_best_intercepts")


def slim(head: Any) -> Any:
    """Drop what the members of a calibrated head keep only for further training."""
    for member in getattr(head, "calibrated_classifiers_", []):
        for name in TRAINING_STATE:
            if hasattr(member.estimator, name):
                delattr(member.estimator, name)
    return head


def minority_weights(y: Sequence[str]) -> npt.NDArray[np.float64]:
    """Per example: 1, or more for a class smaller than half the largest class."""
    counts = Counter(y)
    floor = max(counts.values()) / 2
    return np.asarray([max(1.0, floor / counts[label]) for label in y])


def select_head(
    x: Matrix, y: Sequence[str], *, kinds: Sequence[str], c: float, seed: int
) -> tuple[str, dict[str, float]]:
    """The head kind with the best macro F1 on a validation share of the training data."""
    if len(kinds) == 1:
        return kinds[0], {}
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    cut = int(len(order) * 0.8)
    fit_rows, val_rows = order[:cut], order[cut:]
    labels = np.asarray(y)
    if len(set(labels[fit_rows])) < len(set(labels)) or not len(val_rows):
        return kinds[0], {}
    scores: dict[str, float] = {}
    fitted: dict[str, Estimator] = {}
    # A vote is scored with the members already fitted for their own scores.
    for kind in sorted(kinds, key=lambda k: k == "vote"):
        if kind == "vote" and all(member in fitted for member in VOTE_MEMBERS):
            head: Estimator = SoftVote([fitted[member] for member in VOTE_MEMBERS])
        else:
            head = fit_head(x[fit_rows], list(labels[fit_rows]), kind=kind, c=c, seed=seed)
        fitted[kind] = head
        classes = [str(label) for label in head.classes_]
        metrics = tag_metrics(list(labels[val_rows]), head.predict_proba(x[val_rows]), classes)
        scores[kind] = metrics["macro_f1"]
    return max(scores, key=lambda k: scores[k]), scores


def tag_metrics(
    y_true: Sequence[str], probabilities: npt.NDArray[np.float64], classes: Sequence[str]
) -> dict[str, Any]:
    """Per-label and macro precision, recall and F1, accuracy and the confusion matrix."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = [c for c in classes if c in set(y_true)]
    predicted = [classes[i] for i in np.argmax(probabilities, axis=1)]
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, predicted, labels=labels, zero_division=0
    )
    per_label = {
        label: {
            "precision": round(float(p), 4),
            "recall": round(float(r), 4),
            "f1": round(float(f), 4),
            "support": int(s),
        }
        for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    }
    matrix = confusion_matrix(y_true, predicted, labels=list(classes))
    return {
        "examples": len(y_true),
        "accuracy": round(
            float(np.mean([t == p for t, p in zip(y_true, predicted, strict=True)])), 4
        ),
        "macro_precision": round(float(np.mean(precision)), 4),
        "macro_recall": round(float(np.mean(recall)), 4),
        "macro_f1": round(float(np.mean(f1)), 4),
        "per_label": per_label,
        "confusion": {"labels": list(classes), "matrix": matrix.tolist()},
    }


def macro_intervals(
    y_true: Sequence[str],
    probabilities: npt.NDArray[np.float64],
    classes: Sequence[str],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict[str, list[float]]:
    """95% bootstrap intervals of macro recall and macro F1.

    The texts are resampled with replacement; each resample averages over the labels it holds,
    as :func:`tag_metrics` does. A label with a handful of examples widens the interval, which
    is how far a macro figure on a small held-out set can be trusted.
    """
    index = {label: i for i, label in enumerate(classes)}
    k = len(classes)
    truth = np.asarray([index[label] for label in y_true], dtype=np.int64)
    predicted = np.argmax(probabilities, axis=1).astype(np.int64)
    if len(truth) == 0:
        return {"macro_recall": [0.0, 0.0], "macro_f1": [0.0, 0.0]}
    rng = np.random.default_rng(seed)
    recalls, f1s = [], []
    for _ in range(resamples):
        rows = rng.integers(0, len(truth), len(truth))
        cells = np.bincount(truth[rows] * k + predicted[rows], minlength=k * k).reshape(k, k)
        hits = np.diag(cells).astype(np.float64)
        support = cells.sum(axis=1)
        called = cells.sum(axis=0)
        present = support > 0
        recall = hits[present] / support[present]
        precision = np.divide(
            hits[present],
            called[present],
            out=np.zeros(int(present.sum())),
            where=called[present] > 0,
        )
        both = precision + recall
        f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(both), where=both > 0)
        recalls.append(float(recall.mean()))
        f1s.append(float(f1.mean()))
    return {
        name: [round(float(v), 4) for v in np.percentile(values, [2.5, 97.5])]
        for name, values in (("macro_recall", recalls), ("macro_f1", f1s))
    }


def threshold_table(
    y_true: Sequence[str], probabilities: npt.NDArray[np.float64], classes: Sequence[str]
) -> list[dict[str, float]]:
    """For each threshold: the share of texts tagged (not sent to review) and their precision."""
    best = np.max(probabilities, axis=1)
    predicted = np.asarray([classes[i] for i in np.argmax(probabilities, axis=1)])
    truth = np.asarray(y_true)
    rows = []
    for threshold in THRESHOLD_GRID:
        kept = best >= threshold
        coverage = float(np.mean(kept)) if len(kept) else 0.0
        precision = float(np.mean(predicted[kept] == truth[kept])) if kept.any() else 1.0
        rows.append(
            {
                "threshold": threshold,
                "coverage": round(coverage, 4),
                "precision": round(precision, 4),
            }
        )
    return rows


def choose_threshold(
    table: list[dict[str, float]], *, target_precision: float, max_review_share: float
) -> float:
    """The lowest threshold whose tagged share reaches the target precision, without sending
    more than ``max_review_share`` of messages to review; failing that, the most precise
    threshold within that share."""
    allowed = [row for row in table if row["coverage"] >= 1 - max_review_share]
    if not allowed:
        return 0.0
    for row in allowed:
        if row["precision"] >= target_precision:
            return row["threshold"]
    return max(allowed, key=lambda row: (row["precision"], -row["threshold"]))["threshold"]


@dataclass
class TrainingResult:
    """A trained model and its held-out report."""

    model: TriageModel
    report: dict[str, Any] = field(default_factory=dict)


def _labelled(examples: Sequence[Example], tag: TagName) -> list[Example]:
    return [e for e in examples if e.label(tag) is not None]


def evaluate(
    model: TriageModel,
    examples: Sequence[Example],
    *,
    embeddings: Matrix | None = None,
    real_only: bool = True,
) -> dict[str, Any]:
    """Metrics per tag on labelled examples (and on the non-corpus ones alone)."""
    texts = [e.text for e in examples]
    probs = model.probabilities(texts, embeddings=embeddings)
    report: dict[str, Any] = {}
    for tag in TAGS:
        classes, p = probs[tag]
        class_list = [str(c) for c in classes]
        rows = [i for i, e in enumerate(examples) if e.label(tag) is not None]
        if not rows:
            continue
        truth = [str(examples[i].label(tag)) for i in rows]
        entry = tag_metrics(truth, p[rows], class_list)
        entry["interval_95"] = macro_intervals(truth, p[rows], class_list)
        entry["thresholds"] = threshold_table(truth, p[rows], class_list)
        if real_only:
            real = [i for i in rows if examples[i].source != CORPUS_SOURCE]
            if real and len(real) != len(rows):
                real_truth = [str(examples[i].label(tag)) for i in real]
                real_entry = tag_metrics(real_truth, p[real], class_list)
                entry["real_data"] = {
                    k: real_entry[k]
                    for k in (
                        "examples",
                        "accuracy",
                        "macro_precision",
                        "macro_recall",
                        "macro_f1",
                        "per_label",
                    )
                }
                entry["real_data"]["interval_95"] = macro_intervals(real_truth, p[real], class_list)
        report[tag] = entry
    return report


def train(
    examples: Sequence[Example],
    *,
    embedder: SentenceEncoder,
    holdout: float = 0.2,
    seed: int = 13,
    c: float = 2.0,
    target_precision: float = 0.85,
    max_review_share: float = 0.15,
    cache: EmbeddingCache | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    version: str | None = None,
    head_kinds: Sequence[str] = DEFAULT_HEAD_KINDS,
    lexical_weight: float = DEFAULT_LEXICAL_WEIGHT,
    lexical_c: float = DEFAULT_LEXICAL_C,
) -> TrainingResult:
    """Fit the heads on the training share and report on the held-out share.

    With ``lexical_weight`` above 0, each tag also gets an n-gram head
    (:mod:`services.classifier.lexical`) whose probabilities are blended with the embedding
    head's at that weight.
    """
    if not 0.0 <= lexical_weight <= 1.0:
        raise DataError(f"the lexical weight must be within [0, 1]; got {lexical_weight}")
    rng = random.Random(seed)
    train_set, test_set = holdout_split(examples, share=holdout, seed=seed)
    if not train_set:
        raise DataError("the training share is empty; give more examples or a smaller --holdout")
    cache = cache or EmbeddingCache(None)
    all_texts = [e.text for e in train_set] + [e.text for e in test_set]
    total = cache.missing_count(all_texts)
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress("embedding", done, total)

    vectors = cache.embed(all_texts, embedder.encode, progress=step)
    cache.save()
    train_vectors, test_vectors = vectors[: len(train_set)], vectors[len(train_set) :]
    heads: dict[str, Estimator] = {}
    counts: dict[str, int] = {}
    selection: dict[str, Any] = {}
    steps = len(TAGS) * (2 if lexical_weight > 0 else 1)
    tag_rows: dict[str, list[int]] = {}
    for position, tag in enumerate(TAGS):
        rows = [i for i, e in enumerate(train_set) if e.label(tag) is not None]
        labels = [str(train_set[i].label(tag)) for i in rows]
        if len(set(labels)) < 2:
            raise DataError(f"{tag}: at least two labels are needed to train; found {set(labels)}")
        rng.shuffle(rows)
        texts = [train_set[i].text for i in rows]
        x = design_matrix(train_vectors[rows], texts)
        y = [str(train_set[i].label(tag)) for i in rows]
        kind, scores = select_head(x, y, kinds=head_kinds, c=c, seed=seed)
        heads[tag] = fit_head(x, y, kind=kind, c=c, seed=seed)
        selection[tag] = {"kind": kind, "validation_macro_f1": scores}
        counts[tag] = len(rows)
        tag_rows[tag] = rows
        if progress is not None:
            progress("fitting heads", position + 1, steps)
    lexical: LexicalHeads | None = None
    lexical_parameters: dict[str, Any] = {"weight": 0.0}
    if lexical_weight > 0:
        vectorizer, words = fit_vectorizer([e.text for e in train_set])
        lexical_heads: dict[str, Any] = {}
        for position, tag in enumerate(TAGS):
            rows = tag_rows[tag]
            y = [str(train_set[i].label(tag)) for i in rows]
            lexical_heads[tag] = fit_lexical_head(words[rows], y, c=lexical_c, seed=seed)
            if progress is not None:
                progress("fitting heads", len(TAGS) + position + 1, steps)
        lexical = LexicalHeads(vectorizer=vectorizer, heads=lexical_heads, weight=lexical_weight)
        lexical_parameters = {
            "weight": lexical_weight,
            "C": lexical_c,
            "features": int(words.shape[1]),
        }
    metadata = ModelMetadata(
        version=version or datetime.now(UTC).strftime("%Y.%m.%d-%H%M"),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        embedding_dim=int(vectors.shape[1]),
        embedding_layers=list(getattr(embedder, "layers", [6])),
        feature_names=list(FEATURE_NAMES),
        labels={
            tag: sorted({str(e.label(tag)) for e in _labelled(train_set, tag)}) for tag in TAGS
        },
        thresholds={tag: 0.0 for tag in TAGS},
        training_sources=dict(Counter(e.source for e in train_set).most_common()),
        training_examples=counts,
        hyperparameters={
            "C": c,
            "holdout": holdout,
            "seed": seed,
            "calibration": "sigmoid",
            "heads": selection,
            "lexical": lexical_parameters,
        },
    )
    model = TriageModel(embedder=embedder, heads=heads, metadata=metadata, lexical=lexical)
    report: dict[str, Any] = {}
    if test_set:
        report = evaluate(model, test_set, embeddings=test_vectors)
        thresholds = {
            tag: choose_threshold(
                report[tag]["thresholds"],
                target_precision=target_precision,
                max_review_share=max_review_share,
            )
            for tag in report
        }
        metadata = metadata.model_copy(
            update={
                "thresholds": {**metadata.thresholds, **thresholds},
                "metrics": {
                    tag: {
                        key: value
                        for key, value in entry.items()
                        if key not in ("confusion", "thresholds")
                    }
                    for tag, entry in report.items()
                },
                "threshold_report": {
                    "target_precision": target_precision,
                    "max_review_share": max_review_share,
                    **{tag: entry["thresholds"] for tag, entry in report.items()},
                },
            }
        )
        model = TriageModel(embedder=embedder, heads=heads, metadata=metadata, lexical=lexical)
    return TrainingResult(model=model, report=report)


def write_report(report: dict[str, Any], directory: Path) -> list[Path]:
    """Write metrics.json and one confusion-matrix PNG per tag; return the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / "metrics.json"]
    (directory / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    for tag, entry in report.items():
        labels = entry["confusion"]["labels"]
        matrix = np.asarray(entry["confusion"]["matrix"], dtype=float)
        shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        size = 3 + 0.45 * len(labels)
        fig, ax = plt.subplots(figsize=(size, size))
        ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{tag}: macro F1 {entry['macro_f1']:.2f} ({entry['examples']} held out)")
        for (row, col), count in np.ndenumerate(matrix):
            if count:
                colour = "white" if shares[row, col] > 0.5 else "black"
                ax.text(
                    col, row, str(int(count)), ha="center", va="center", fontsize=7, color=colour
                )
        fig.tight_layout()
        path = directory / f"confusion_{tag}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
