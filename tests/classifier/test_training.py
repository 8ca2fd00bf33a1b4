"""`triage train`, `triage classify` and `triage evaluate` through the real fine-tuning path, on a
tiny sample for a few steps."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from services.classifier.model import (
    DEFAULT_MODEL_DIR,
    LABELS,
    ONNX_FILE,
    WEIGHTS_FILE,
    TriageModel,
    sha256_of,
)
from services.classifier.training import (
    DataError,
    holdout_split,
    load_examples,
    three_way_split,
)
from services.cli import main

CORPUS = Path(__file__).parents[2] / "services" / "classifier" / "corpus"


@pytest.fixture(scope="module")
def small_training_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lines = []
    for path in sorted(CORPUS.glob("*.jsonl")):
        lines.extend(path.read_text().splitlines())
    random.Random(3).shuffle(lines)
    rows = [json.loads(line) for line in lines[:400]]
    for number, row in enumerate(rows):
        row["source"] = "shop-a" if number % 2 else "shop-b"
    path = tmp_path_factory.mktemp("data") / "tickets.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def tiny_model(small_training_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "tiny"
    result = CliRunner().invoke(
        main,
        [
            *("train", "--data", str(small_training_file), "--out", str(out)),
            *("--sample", "64", "--max-steps", "4", "--batch-size", "16", "--max-tokens", "48"),
            *("--holdout", "0.4", "--seed", "5"),
        ],
    )
    assert result.exit_code == 0, result.output
    # Without a terminal, the progress bar is a line every 5% with the time left.
    assert "fine-tuning: 4/4 (100%)" in result.output
    assert "ETA" in result.output
    assert "macro P" in result.output
    return out


def test_train_writes_both_backends_with_checksums_and_a_report(tiny_model: Path) -> None:
    metadata = json.loads((tiny_model / "metadata.json").read_text())
    assert metadata["base_encoder"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert metadata["max_tokens"] == 48
    assert metadata["labels"] == {tag: list(labels) for tag, labels in LABELS.items()}
    for name in (ONNX_FILE, WEIGHTS_FILE):
        assert metadata["files"][name] == sha256_of(tiny_model / name)
    assert metadata["hyperparameters"]["run"]["steps"] == 4
    assert sum(metadata["training_sources"].values()) == 64
    assert set(metadata["source_licences"]) == set(metadata["training_sources"])
    assert set(metadata["temperatures"]) == set(metadata["thresholds"]) == set(LABELS)
    assert all(t > 0 for t in metadata["temperatures"].values())
    assert set(metadata["calibration"]["ece_test"]) == set(LABELS)
    assert set(metadata["metrics"]["by_source"]) == {"shop-a", "shop-b"}
    for tag in LABELS:
        assert {"coverage", "precision", "threshold"} <= set(
            metadata["threshold_report"]["at_threshold_test"][tag]
        )
        assert (tiny_model / "report" / f"confusion_{tag}.png").stat().st_size > 1000


def test_both_backends_of_a_trained_model_agree(tiny_model: Path) -> None:
    texts = ["You charged me twice, refund me now!", "Thanks, the engineer was great."]
    onnx = TriageModel.load(tiny_model, backend="onnx").outputs(texts)
    torch = TriageModel.load(tiny_model, backend="torch").outputs(texts)
    assert (onnx[0] * torch[0]).sum(axis=1).min() > 0.95
    for tag in LABELS:
        assert abs(onnx[1][tag] - torch[1][tag]).max() < 0.1


def test_classify_and_evaluate_use_a_trained_model(
    tiny_model: Path, small_training_file: Path, tmp_path: Path
) -> None:
    texts = tmp_path / "in.jsonl"
    texts.write_text(
        json.dumps({"id": "a", "channel": "chat", "text": "Where is my refund of €20?"})
        + "\n\n"
        + json.dumps({"text": "Great service, thanks!"})
        + "\n"
        + json.dumps({"text": "Je voudrais annuler ma commande, s'il vous plaît."})
        + "\n"
    )
    tagged = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        main,
        ["classify", "--input", str(texts), "--output", str(tagged), "--model", str(tiny_model)],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in tagged.read_text().splitlines()]
    assert [row.get("id") for row in rows] == ["a", None, None]
    assert rows[0]["channel"] == "chat"
    for key in ("sentiment", "category", "difficult", "category_probability", "needs_review"):
        assert key in rows[0]
    assert rows[0]["facts"]["amounts"][0]["currency"] == "EUR"
    assert rows[2]["needs_review"] is True
    assert rows[2]["review_reason"] == "language fr"

    held = three_way_split(load_examples([small_training_file]), holdout=0.4, seed=5)[2]
    result = CliRunner().invoke(
        main,
        [
            *("evaluate", "--data", str(small_training_file), "--model", str(tiny_model)),
            *("--held-out", "--holdout", "0.4", "--seed", "5", "--by-source"),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["examples"] == len(held) < 400
    sources = report["by_source"]
    assert set(sources) == {e.source for e in held}
    labelled = sum(1 for e in held if e.label_category is not None)
    assert report["metrics"]["category"]["examples"] == labelled
    assert sum(s["category"]["examples"] for s in sources.values()) == labelled
    category = report["metrics"]["category"]
    assert 0 <= category["calibration_error"] <= 1
    for name in ("macro_recall", "macro_f1"):
        low, high = category["interval_95"][name]
        assert 0 <= low <= high <= 1


def test_bad_training_data_is_refused_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"text": "ok", "label_category": "billing"}\n{"text": "x", "label_category": "weather"}\n'
    )
    with pytest.raises(DataError, match=r"bad.jsonl:2: label_category"):
        load_examples([bad])
    result = CliRunner().invoke(main, ["train", "--data", str(bad), "--out", str(tmp_path / "m")])
    assert result.exit_code == 1
    assert "bad.jsonl:2" in result.output
    result = CliRunner().invoke(main, ["train", "--out", str(tmp_path / "m")])
    assert result.exit_code == 2


def test_a_tag_without_any_label_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "only_sentiment.jsonl"
    data.write_text(
        "".join(
            json.dumps({"text": f"message number {n}", "label_sentiment": "neutral"}) + "\n"
            for n in range(20)
        )
    )
    result = CliRunner().invoke(
        main, ["train", "--data", str(data), "--out", str(tmp_path / "m"), "--max-steps", "1"]
    )
    assert result.exit_code == 1
    assert "no training example has a category label" in result.output


def test_classify_refuses_a_bad_line(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "fine"}\n{"id": 1}\n')
    result = CliRunner().invoke(
        main, ["classify", "--input", str(source), "--output", str(tmp_path / "o.jsonl")]
    )
    assert result.exit_code == 1
    assert "in.jsonl:2: 'text' must be a non-empty string" in result.output


def test_split_keeps_repeated_texts_together() -> None:
    examples = load_examples(sorted(CORPUS.glob("*.jsonl")))
    doubled = examples + [e.model_copy(update={"text": e.text.upper()}) for e in examples[:100]]
    train, validation, test = three_way_split(doubled, holdout=0.2, seed=1)
    assert len(train) + len(validation) + len(test) == len(doubled)
    assert 0.05 < len(test) / len(doubled) < 0.15
    keys = [{" ".join(e.text.lower().split()) for e in part} for part in (train, validation, test)]
    assert not keys[0] & keys[1]
    assert not keys[0] & keys[2]
    assert not keys[1] & keys[2]
    assert holdout_split(doubled, share=0.0, seed=1)[1] == []


def test_shipped_model_metadata() -> None:
    metadata = json.loads((DEFAULT_MODEL_DIR / "metadata.json").read_text())
    assert metadata["base_encoder"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "triage-corpus" in metadata["training_sources"]
    assert not any("semeval2019" in source for source in metadata["training_sources"])
    assert "unknown" not in metadata["source_licences"].values()
    assert metadata["metrics"]["category"]["macro_f1"] > 0.7
    assert set(metadata["thresholds"]) == {"sentiment", "category", "difficult"}
    assert all(0 < value < 1 for value in metadata["thresholds"].values())
    size = sum(path.stat().st_size for path in DEFAULT_MODEL_DIR.iterdir() if path.is_file())
    assert size <= 40 * 1024 * 1024
