"""A faster embedder: all-MiniLM-L6-v2 exported to ONNX with int8 weights, run by ONNX Runtime.

It computes the same embedding as :class:`services.classifier.model.Embedder`: the mean-pooled
states of the layers in ``EMBEDDING_LAYERS``, each L2-normalised.

The export is made locally from the packaged model on first use,
never downloaded. MatMul weights are quantised per channel, which keeps embeddings within about
0.99 cosine of the original; the benchmark reports the accuracy of the heads on both.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from services.classifier.model import (
    EMBEDDING_DIM,
    EMBEDDING_LAYERS,
    MAX_TEXT_CHARS,
    Matrix,
    ModelError,
    mean_pool,
    model_path_of_embedder,
    pooled_layers,
)

DEFAULT_ONNX_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "triage-onnx"
FP32_NAME = "minilm-layers-fp32.onnx"
INT8_NAME = "minilm-layers-int8.onnx"
# One output per pooled layer, in the order of EMBEDDING_LAYERS.
OUTPUTS = [f"layer_{layer}" for layer in EMBEDDING_LAYERS]
MAX_TOKENS = 256


def export_onnx(directory: Path = DEFAULT_ONNX_DIR) -> Path:
    """Export the packaged encoder to ONNX and quantise it; return the int8 model's path."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel, AutoTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    source = model_path_of_embedder()
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    encoder = AutoModel.from_pretrained(str(source)).eval()

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = encoder

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> tuple[torch.Tensor, ...]:
            output = self.inner(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                output_hidden_states=True,
            )
            return tuple(output.hidden_states[layer] for layer in EMBEDDING_LAYERS)

    sample = tokenizer(["an example sentence"], return_tensors="pt")
    fp32 = directory / FP32_NAME
    with torch.no_grad():
        torch.onnx.export(
            Encoder().eval(),
            (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
            str(fp32),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=OUTPUTS,
            dynamic_axes={
                name: {0: "batch", 1: "tokens"}
                for name in ("input_ids", "attention_mask", "token_type_ids", *OUTPUTS)
            },
            opset_version=17,
            dynamo=False,
        )
    int8 = directory / INT8_NAME
    quantize_dynamic(
        str(fp32),
        str(int8),
        per_channel=True,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"],
    )
    return int8


class OnnxEmbedder:
    """Embeddings from the int8 ONNX encoder: the layers of ``EMBEDDING_LAYERS``, mean-pooled and
    L2-normalised."""

    layers = EMBEDDING_LAYERS

    def __init__(self, model_file: Path | None = None, *, threads: int | None = None) -> None:
        import onnxruntime
        from transformers import AutoTokenizer

        path = model_file or DEFAULT_ONNX_DIR / INT8_NAME
        if not path.is_file():
            path = export_onnx(path.parent)
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self._session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # a corrupt or foreign file: say which
            raise ModelError(f"cannot load ONNX model {path}: {exc}") from exc
        names = [output.name for output in self._session.get_outputs()]
        if names != OUTPUTS:
            raise ModelError(
                f"ONNX model {path} has outputs {names}, not {OUTPUTS}; "
                "delete it and it is exported again on first use"
            )
        self._tokenizer = AutoTokenizer.from_pretrained(str(model_path_of_embedder()))
        self.dimension = EMBEDDING_DIM

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> Matrix:
        """One row per text."""
        rows = []
        for start in range(0, len(texts), batch_size):
            chunk = [text[:MAX_TEXT_CHARS] for text in texts[start : start + batch_size]]
            tokens = self._tokenizer(
                chunk, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="np"
            )
            last, *intermediate = self._session.run(
                OUTPUTS,
                {
                    "input_ids": tokens["input_ids"].astype(np.int64),
                    "attention_mask": tokens["attention_mask"].astype(np.int64),
                    "token_type_ids": tokens["token_type_ids"].astype(np.int64),
                },
            )
            mask = tokens["attention_mask"].astype(np.float32)
            rows.append(pooled_layers(mean_pool(last, mask), intermediate, mask))
        if not rows:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.vstack(rows).astype(np.float32)
