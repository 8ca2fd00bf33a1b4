"""`triage train`, `triage classify` and `triage evaluate` on the real embedding model."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from services.classifier.model import DEFAULT_MODEL_DIR, EMBEDDING_LAYERS, TriageModel
from services.classifier.training import DataError, holdout_split, load_examples
from services.cli import main

CORPUS = Path(__file__).parents[2] / "services" / "classifier" / "corpus"


@pytest.fixture(scope="module")
def small_training_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lines = []
    for path in sorted(CORPUS.glob("*.jsonl")):
        lines.extend(path.read_text().splitlines())
    random.Random(3).shuffle(lines)
    path = tmp_path_factory.mktemp("data") / "tickets.jsonl"
    path.write_text("\n".join(lines[:600]) + "\n")
    return path


def test_train_writes_a_model_and_report(small_training_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--data",
            str(small_training_file),
            "--out",
            str(out),
            "--heads",
            "logreg",
            "--holdout",
            "0.3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (out / "heads.joblib").is_file()
    assert (out / "lexical.joblib").is_file()
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["hyperparameters"]["lexical"]["weight"] == 0.5
    assert metadata["embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert set(metadata["labels"]) == {"sentiment", "category", "difficult"}
    assert metadata["training_sources"] == {
        "triage-corpus": sum(metadata["training_sources"].values())
    }
    assert set(metadata["metrics"]["category"]) >= {"macro_f1", "macro_recall", "per_label"}
    for tag in ("sentiment", "category", "difficult"):
        assert (out / "report" / f"confusion_{tag}.png").stat().st_size > 1000
    assert "macro P" in result.output

    model = TriageModel.load(out)
    assert model.lexical is not None
    (prediction,) = model.predict(["You charged me twice, refund me now!"])
    assert prediction.category.label in metadata["labels"]["category"]

    texts = tmp_path / "in.jsonl"
    texts.write_text(
        json.dumps({"id": "a", "channel": "chat", "text": "Where is my refund of €20?"})
        + "\n\n"
        + json.dumps({"text": "Great service, thanks!"})
        + "\n"
    )
    tagged = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        main, ["classify", "--input", str(texts), "--output", str(tagged), "--model", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in tagged.read_text().splitlines()]
    assert [row.get("id") for row in rows] == ["a", None]
    assert rows[0]["channel"] == "chat"
    for key in ("sentiment", "category", "difficult", "category_probability", "needs_review"):
        assert key in rows[0]
    assert rows[0]["facts"]["amounts"][0]["currency"] == "EUR"

    result = CliRunner().invoke(
        main, ["evaluate", "--data", str(small_training_file), "--model", str(out)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["examples"] == 600
    category = report["metrics"]["category"]
    assert 0 <= category["macro_f1"] <= 1
    low, high = category["interval_95"]["macro_f1"]
    assert 0 <= low <= high <= 1


def test_evaluate_scores_the_held_out_share_by_source(
    small_training_file: Path, tmp_path: Path
) -> None:
    rows = [json.loads(line) for line in small_training_file.read_text().splitlines()]
    for number, row in enumerate(rows):
        row["source"] = "shop-a" if number % 2 else "shop-b"
    data = tmp_path / "two_shops.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    held = holdout_split(load_examples([data]), share=0.3, seed=5)[1]

    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--data",
            str(data),
            "--held-out",
            "--holdout",
            "0.3",
            "--seed",
            "5",
            "--by-source",
            "--cache",
            str(tmp_path / "cache"),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["examples"] == len(held) < len(rows)
    sources = report["by_source"]
    assert set(sources) == {e.source for e in held}
    labelled = sum(1 for e in held if e.label_category is not None)
    assert report["metrics"]["category"]["examples"] == labelled
    assert sum(s["category"]["examples"] for s in sources.values()) == labelled
    for name in ("macro_recall", "macro_f1"):
        low, high = report["metrics"]["sentiment"]["interval_95"][name]
        assert 0 <= low <= high <= 1
    assert list((tmp_path / "cache").glob("minilm-layers-*.keys.json"))


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
    train, test = holdout_split(doubled, share=0.2, seed=1)
    train_keys = {" ".join(e.text.lower().split()) for e in train}
    assert all(" ".join(e.text.lower().split()) not in train_keys for e in test)


def test_shipped_model_metadata() -> None:
    metadata = json.loads((DEFAULT_MODEL_DIR / "metadata.json").read_text())
    assert metadata["embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert metadata["embedding_layers"] == list(EMBEDDING_LAYERS)
    assert "triage-corpus" in metadata["training_sources"]
    assert "semeval2019_task9_suggestions" not in metadata["training_sources"]
    assert metadata["metrics"]["category"]["macro_f1"] > 0.5
    assert set(metadata["thresholds"]) == {"sentiment", "category", "difficult"}


def test_a_vote_head_averages_its_members() -> None:
    import numpy as np

    from services.classifier.training import SoftVote, fit_head, select_head

    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 1, (60, 4)), rng.normal(2, 1, (60, 4))]).astype(np.float32)
    y = ["a"] * 60 + ["b"] * 60
    vote = fit_head(x, y, kind="vote", c=1.0, seed=1)
    assert isinstance(vote, SoftVote)
    assert [str(c) for c in vote.classes_] == ["a", "b"]
    members = [m.predict_proba(x[:5]) for m in vote.members]
    assert np.allclose(vote.predict_proba(x[:5]), (members[0] + members[1]) / 2)
    kind, scores = select_head(x, y, kinds=["logreg", "mlp", "vote"], c=1.0, seed=1)
    assert set(scores) == {"logreg", "mlp", "vote"}
    assert kind in scores
