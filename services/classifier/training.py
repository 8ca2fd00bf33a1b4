"""Training and evaluation of the triage model from labelled JSON Lines.

Each line has ``text`` and any of ``label_sentiment``, ``label_category``, ``label_difficult``
(optionally ``source``). The encoder and its heads are fine-tuned together (see
:mod:`services.classifier.finetune`); every example trains the heads of the labels it carries.
The held-out share, split by text so repeated texts never straddle it, is halved: the
validation half calibrates each head (temperature scaling) and chooses its review threshold,
the test half gives the report: per-label precision, recall and F1, macro averages with 95%
intervals, calibration error, confusion matrices, per-source figures and the precision each
confidence threshold buys.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, ValidationError

from services.classifier.finetune import FineTuneConfig
from services.classifier.model import (
    LABELS,
    TAGS,
    Matrix,
    ModelMetadata,
    TagName,
    TriageModel,
    encode,
    load_tokenizer,
    softmax,
    write_metadata,
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
    """Read JSON Lines files (``-``: standard input); the first bad line stops with its file and
    line number."""
    examples: list[Example] = []
    for path in paths:
        try:
            if str(path) == "-":  # standard input
                path = Path("<stdin>")
                lines = sys.stdin.buffer.read().decode("utf-8").splitlines()
            else:
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


# Where each training source comes from and under which licence (recorded in the model).
SOURCE_LICENCES = {
    "triage-corpus": "Apache-2.0 (this project's hand-written corpus)",
    "banking77": "CC BY 4.0 (BANKING77, PolyAI)",
    "cfpb_complaints": "US public government data (CFPB Consumer Complaint Database)",
    "uci_sentiment_sentences": "Apache-2.0 copy of UCI Sentiment Labelled Sentences",
    "goemotions": "Apache-2.0 (GoEmotions, Google Research)",
    "semeval2017_task4a": "SemEval-2017 Task 4 data, Twitter terms apply",
    "tweeteval": "TweetEval, released without restrictions; Twitter terms apply",
    "davidson": "MIT (Davidson et al., 2017)",
}
# The lowest review threshold: a calibrated probability under it is a tag more likely wrong.
EVEN_ODDS = 0.5
# Buckets of the expected calibration error.
CALIBRATION_BINS = 15
# Temperatures tried when calibrating a head, on a log scale.
TEMPERATURE_GRID = tuple(float(t) for t in np.exp(np.linspace(np.log(0.3), np.log(5.0), 80)))


def licence_of(source: str) -> str:
    """The licence of a training source, by its name or family (``tweeteval/irony``)."""
    family = source.split("/", 1)[0]
    return SOURCE_LICENCES.get(source) or SOURCE_LICENCES.get(family, "unknown")


def three_way_split(
    examples: Sequence[Example], *, holdout: float, seed: int
) -> tuple[list[Example], list[Example], list[Example]]:
    """Training, validation and test shares, split by text key: the held-out ``holdout`` share
    is halved into a validation share (calibration, thresholds) and a test share (the report)."""
    train_set, held = holdout_split(examples, share=holdout, seed=seed)
    test, validation = holdout_split(held, share=0.5, seed=seed + 1)
    return train_set, validation, test


def fit_temperature(logits: Matrix, truth: Sequence[int]) -> float:
    """The temperature whose softmax gives the labelled rows the lowest negative log-likelihood."""
    if not len(truth):
        return 1.0
    rows = np.arange(len(truth))
    target = np.asarray(truth)

    def nll(temperature: float) -> float:
        p = softmax(logits, temperature)
        return float(-np.mean(np.log(np.maximum(p[rows, target], 1e-12))))

    return min(TEMPERATURE_GRID, key=nll)


def calibration_error(
    probabilities: npt.NDArray[np.float64], truth: Sequence[int], *, bins: int = CALIBRATION_BINS
) -> float:
    """Expected calibration error of the top label: the gap between confidence and accuracy,
    averaged over equal-width confidence bins weighted by their share of texts."""
    if not len(truth):
        return 0.0
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(truth)
    edges = np.linspace(0.0, 1.0, bins + 1)
    error = 0.0
    for low, high in itertools.pairwise(edges):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            gap = abs(float(confidence[inside].mean()) - float(correct[inside].mean()))
            error += gap * float(inside.mean())
    return round(error, 4)


def _labelled_rows(examples: Sequence[Example], tag: TagName) -> tuple[list[int], list[int]]:
    index = {label: i for i, label in enumerate(LABELS[tag])}
    rows = [i for i, e in enumerate(examples) if e.label(tag) is not None]
    return rows, [index[str(examples[i].label(tag))] for i in rows]


@dataclass
class TrainingResult:
    """Where the model was written and its held-out report."""

    directory: Path
    report: dict[str, Any] = field(default_factory=dict)


def evaluate(
    model: TriageModel,
    examples: Sequence[Example],
    *,
    probabilities: dict[TagName, npt.NDArray[np.float64]] | None = None,
    real_only: bool = True,
) -> dict[str, Any]:
    """Metrics per tag on labelled examples (and on the non-corpus ones alone): per-label and
    macro figures with 95% intervals, calibration error and the threshold table."""
    if probabilities is None:
        probabilities = model.outputs([e.text for e in examples])[1]
    report: dict[str, Any] = {}
    for tag in TAGS:
        classes = list(LABELS[tag])
        rows, truth_index = _labelled_rows(examples, tag)
        if not rows:
            continue
        truth = [classes[i] for i in truth_index]
        p = probabilities[tag][rows]
        entry = tag_metrics(truth, p, classes)
        entry["interval_95"] = macro_intervals(truth, p, classes)
        entry["calibration_error"] = calibration_error(p, truth_index)
        entry["thresholds"] = threshold_table(truth, p, classes)
        threshold = model.thresholds.get(tag, 0.0)
        kept = p.max(axis=1) >= threshold
        hits = np.asarray([classes[i] for i in p.argmax(axis=1)]) == np.asarray(truth)
        entry["at_threshold"] = {
            "threshold": threshold,
            "coverage": round(float(kept.mean()), 4),
            "precision": round(float(hits[kept].mean()), 4) if kept.any() else 1.0,
        }
        if real_only:
            real = [j for j, i in enumerate(rows) if examples[i].source != CORPUS_SOURCE]
            if real and len(real) != len(rows):
                real_truth = [truth[j] for j in real]
                real_entry = tag_metrics(real_truth, p[real], classes)
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
                entry["real_data"]["interval_95"] = macro_intervals(real_truth, p[real], classes)
        report[tag] = entry
    return report


def by_source(
    model: TriageModel,
    examples: Sequence[Example],
    probabilities: dict[TagName, npt.NDArray[np.float64]],
) -> dict[str, Any]:
    """:func:`evaluate` of each source on its own (no confusion matrices or threshold tables)."""
    rows_of: dict[str, list[int]] = {}
    for row, example in enumerate(examples):
        rows_of.setdefault(example.source, []).append(row)
    out: dict[str, Any] = {}
    for source, rows in sorted(rows_of.items()):
        entry = evaluate(
            model,
            [examples[r] for r in rows],
            probabilities={tag: p[rows] for tag, p in probabilities.items()},
            real_only=False,
        )
        for tag_entry in entry.values():
            for key in ("confusion", "thresholds"):
                tag_entry.pop(key, None)
        out[source] = entry
    return out


def fit_network(
    examples: Sequence[Example],
    *,
    config: FineTuneConfig,
    corpus_repeat: int,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """A network fine-tuned on the examples (the project's corpus shown ``corpus_repeat``
    times), and what the run did."""
    from services.classifier import finetune

    shown = [e for e in examples for _ in range(corpus_repeat if e.source == CORPUS_SOURCE else 1)]
    data = finetune.encode_examples(
        [e.text for e in shown],
        {tag: [e.label(tag) for e in shown] for tag in TAGS},
        max_tokens=config.max_tokens,
    )
    network = finetune.build_network()

    def on_step(step: int, total: int, losses: dict[str, float]) -> None:
        if progress is not None:
            progress("fine-tuning", step, total)

    run = finetune.fine_tune(network, data, config=config, progress=on_step)
    return network, run


def logits_for(
    network: Any, examples: Sequence[Example], *, max_tokens: int
) -> dict[TagName, Matrix]:
    """Each tag's logits of the examples from a network in training form (torch)."""
    from services.classifier import finetune

    ids = encode(load_tokenizer(max_tokens=max_tokens), [e.text for e in examples])
    return finetune.logits_of(network, ids)[1]


def train(
    examples: Sequence[Example],
    *,
    out: Path,
    config: FineTuneConfig | None = None,
    holdout: float = 0.2,
    seed: int = 13,
    sample: int | None = None,
    corpus_repeat: int = 2,
    target_precision: float = 0.85,
    max_review_share: float = 0.15,
    progress: Callable[[str, int, int], None] | None = None,
    version: str | None = None,
) -> TrainingResult:
    """Fine-tune the encoder and heads on the training share, calibrate on the validation
    share, write the model to ``out`` and report on the test share.

    ``sample`` trains on that many training examples drawn at random (a quick model);
    ``corpus_repeat`` shows the project's corpus that many times an epoch, since it alone
    covers six difficult types and the contact-centre register.
    """
    from services.classifier import finetune

    config = config or FineTuneConfig(seed=seed)
    train_set, validation, test = three_way_split(examples, holdout=holdout, seed=seed)
    if sample is not None and sample < len(train_set):
        train_set = random.Random(seed).sample(train_set, sample)
    if not train_set:
        raise DataError("the training share is empty; give more examples or a smaller --holdout")
    for tag in TAGS:
        found = {e.label(tag) for e in train_set if e.label(tag) is not None}
        if not found:
            raise DataError(f"no training example has a {tag} label")
    network, run = fit_network(
        train_set, config=config, corpus_repeat=corpus_repeat, progress=progress
    )
    temperatures: dict[str, float] = {}
    uncalibrated: dict[str, float] = {}
    if validation:
        if progress is not None:
            progress("calibrating", 0, 1)
        logits = logits_for(network, validation, max_tokens=config.max_tokens)
        for tag in TAGS:
            rows, truth = _labelled_rows(validation, tag)
            temperatures[tag] = round(fit_temperature(logits[tag][rows], truth), 4)
            uncalibrated[tag] = calibration_error(softmax(logits[tag][rows]), truth)
        if progress is not None:
            progress("calibrating", 1, 1)
    if progress is not None:
        progress("exporting", 0, 1)
    out.mkdir(parents=True, exist_ok=True)
    finetune.save_model_files(network, out)
    if progress is not None:
        progress("exporting", 1, 1)
    sources = Counter(e.source for e in train_set)
    metadata = ModelMetadata(
        version=version or datetime.now(UTC).strftime("%Y.%m.%d-%H%M"),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        max_tokens=config.max_tokens,
        labels={tag: list(LABELS[tag]) for tag in TAGS},
        temperatures={tag: temperatures.get(tag, 1.0) for tag in TAGS},
        thresholds={tag: 0.0 for tag in TAGS},
        training_sources=dict(sources.most_common()),
        source_licences={source: licence_of(source) for source in sorted(sources)},
        training_examples={
            tag: sum(1 for e in train_set if e.label(tag) is not None) for tag in TAGS
        },
        hyperparameters={
            "holdout": holdout,
            "seed": seed,
            "sample": sample,
            "corpus_repeat": corpus_repeat,
            "fine_tune": {**asdict(config), "task_weights": dict(config.task_weights)},
            "run": run,
            "heads": "linear on the mean-pooled last layer, one per tag",
            "frozen": "word, position and type embeddings",
            "onnx": "ONNX Runtime transformer fusions, int8 per-channel dynamic quantisation",
        },
    )
    write_metadata(metadata, out)
    if progress is not None:
        progress("evaluating", 0, 1)
    report = finalise(
        out,
        validation,
        test,
        target_precision=target_precision,
        max_review_share=max_review_share,
        uncalibrated=uncalibrated,
    )
    if progress is not None:
        progress("evaluating", 1, 1)
    return TrainingResult(directory=out, report=report)


def finalise(
    out: Path,
    validation: Sequence[Example],
    test: Sequence[Example],
    *,
    target_precision: float,
    max_review_share: float,
    uncalibrated: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Choose the review thresholds on the validation share and report on the test share, both
    with the written model as it runs (int8 ONNX); record both in its metadata. Returns the
    test report (with confusion matrices and threshold tables)."""
    model = TriageModel.load(out, backend="onnx")
    if validation:
        _, validation_p = model.outputs([e.text for e in validation])
        validation_report = evaluate(model, validation, probabilities=validation_p)
        # The probabilities are calibrated, so below even odds the tag is more likely wrong
        # than right: such a tag always needs review, whatever the precision target says.
        thresholds = {
            tag: max(
                EVEN_ODDS,
                choose_threshold(
                    entry["thresholds"],
                    target_precision=target_precision,
                    max_review_share=max_review_share,
                ),
            )
            for tag, entry in validation_report.items()
        }
        model.metadata = model.metadata.model_copy(update={"thresholds": thresholds})
        model.thresholds = dict(thresholds)
    if not test:
        write_metadata(model.metadata, out)
        return {}
    _, test_p = model.outputs([e.text for e in test])
    report = evaluate(model, test, probabilities=test_p)
    calibration = dict(model.metadata.calibration)
    if uncalibrated is not None:
        calibration["ece_uncalibrated_validation"] = uncalibrated
    calibration.update(
        {
            "method": "temperature scaling on the validation share",
            "validation_examples": len(validation),
            "test_examples": len(test),
            "ece_test": {tag: entry["calibration_error"] for tag, entry in report.items()},
        }
    )
    metadata = model.metadata.model_copy(
        update={
            "metrics": {
                **{
                    tag: {
                        key: value
                        for key, value in entry.items()
                        if key not in ("confusion", "thresholds")
                    }
                    for tag, entry in report.items()
                },
                "by_source": by_source(model, test, test_p),
            },
            "calibration": calibration,
            "threshold_report": {
                "chosen_on": "validation share",
                "target_precision": target_precision,
                "max_review_share": max_review_share,
                "at_threshold_test": {tag: entry["at_threshold"] for tag, entry in report.items()},
            },
        }
    )
    write_metadata(metadata, out)
    return report


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
