"""Leave-one-source-out check: can a label be told from the words, or only from a source's style?

For each source named, the encoder and heads are fine-tuned (as ``triage train`` does, on a
smaller budget) on every other source, then scored on all of the left-out source's labelled
examples. A label learnt from a source's style (tweets -> jester, long narratives -> a CFPB
category) collapses when its source is left out; one learnt from the words holds.

    .venv/bin/python scripts/leave_one_source_out.py \
        --data build/training/public.jsonl services/classifier/corpus/*.jsonl \
        --leave-out banking77 cfpb_complaints tweeteval/irony [--sample 12000] [--epochs 1]

Prints one line per source and tag (macro F1 over the labels the source has, with its 95%
interval, and the per-label F1), and writes the figures as JSON with ``--out``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

from services.classifier import finetune
from services.classifier.model import LABELS, softmax
from services.classifier.training import (
    Example,
    fit_network,
    load_examples,
    logits_for,
    macro_intervals,
    tag_metrics,
)


def family(source: str) -> str:
    """Sources are matched by name or by family: ``uci_sentiment_sentences`` covers all three."""
    return source.split("/", 1)[0]


def left_out_scores(
    examples: list[Example], source: str, *, sample: int, config: finetune.FineTuneConfig
) -> dict[str, Any]:
    inside = [e for e in examples if source in (e.source, family(e.source))]
    rest = [e for e in examples if source not in (e.source, family(e.source))]
    rng = random.Random(config.seed)
    train = rng.sample(rest, min(sample, len(rest)))
    network, _ = fit_network(train, config=config, corpus_repeat=2)
    scored = [e for e in inside if any(e.label(tag) for tag in ("category", "difficult"))]
    logits = logits_for(network, scored, max_tokens=config.max_tokens)
    out: dict[str, Any] = {"examples": len(inside), "trained_on": len(train)}
    for tag in ("category", "difficult"):
        rows = [i for i, e in enumerate(scored) if e.label(tag) is not None]
        if not rows:
            continue
        truth = [str(scored[i].label(tag)) for i in rows]
        probabilities = softmax(logits[tag][rows])
        metrics = tag_metrics(truth, probabilities, list(LABELS[tag]))
        out[tag] = {
            "examples": len(rows),
            "macro_f1": metrics["macro_f1"],
            "interval_95": macro_intervals(truth, probabilities, list(LABELS[tag]))["macro_f1"],
            "per_label_f1": {k: v["f1"] for k, v in metrics["per_label"].items()},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", nargs="+", type=Path, required=True)
    parser.add_argument("--leave-out", nargs="+", required=True)
    parser.add_argument("--sample", type=int, default=12000)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    examples = load_examples(args.data)
    config = finetune.FineTuneConfig(
        epochs=args.epochs, max_tokens=args.max_tokens, seed=args.seed, threads=None
    )
    results: dict[str, Any] = {}
    for source in args.leave_out:
        started = time.perf_counter()
        results[source] = left_out_scores(examples, source, sample=args.sample, config=config)
        seconds = time.perf_counter() - started
        for tag in ("category", "difficult"):
            if tag not in results[source]:
                continue
            entry = results[source][tag]
            low, high = entry["interval_95"]
            labels = ", ".join(f"{k} {v:.2f}" for k, v in entry["per_label_f1"].items())
            print(
                f"{source:<28} {tag:<9} macro F1 {entry['macro_f1']:.3f} ({low:.3f}-{high:.3f}),"
                f" {entry['examples']} examples: {labels}",
                flush=True,
            )
        print(f"{source:<28} ({seconds:.0f} s)", flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
