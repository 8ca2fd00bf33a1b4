"""Builds the public part of the shipped model's training data from the labelled datasets.

    .venv/bin/python scripts/prepare_training_data.py --datasets ../shared/datasets \
        --out build/training/public.jsonl

The project's own corpus (services/classifier/corpus/) is added at training time. Only sources
whose licence allows training a model that is redistributed are used. The rule behind every
choice: no label may be told from a source's style alone, so each source that gives a label
also gives that label's other side in its own register.

- banking77 (CC BY 4.0): category (large intents sampled down); a sample as difficult ``none``.
- cfpb_complaints, train and train_extra (US public data): every category label.
- uci_sentiment_sentences (Apache-2.0): sentiment, ``praise`` for positive product and
  restaurant reviews, and difficult ``none`` (reviews, neither abusive nor ironic).
- goemotions (Apache-2.0): sentiment; ``angry`` for anger; comments without anger, annoyance,
  disapproval or disgust as ``none``.
- semeval2017_task4a and tweeteval sentiment: sentiment of public posts; neutral ones also
  ``none``.
- tweeteval emotion: ``angry`` for anger, the other emotions as ``none`` (same register).
- tweeteval irony: ``jester`` for ironic tweets and ``none`` for the non-ironic ones.
- tweeteval offensive: ``abusive`` and ``none`` for the not-offensive ones; tweeteval hate and
  davidson add a sample of ``abusive``.
- Left out of training: semeval2019_task9_suggestions (non-commercial share-alike licence).
  ``--eval-out`` writes it as a separate file to measure suggestions on, never to train on.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

RT_PREFIX = re.compile(r"^(?:RT\s+)?@\w+:?\s*")
MENTION = re.compile(r"@\w+")
URL = re.compile(r"https?://\S+")
# GoEmotions labels that make a comment hostile enough not to count as an ordinary one.
HOSTILE_EMOTIONS = {"anger", "annoyance", "disapproval", "disgust"}
# Per banking77 category, the most examples kept (the intents are many short paraphrases).
BANKING_PER_CATEGORY = 600
TWEETS_PER_SENTIMENT = 4500
GOEMOTIONS_PER_SENTIMENT = 2500


def read(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def clean_tweet(text: str) -> str:
    text = RT_PREFIX.sub("", text.strip())
    text = URL.sub("http://url", text)
    return MENTION.sub("@user", text).strip()


def sample(records: list[T], count: int, rng: random.Random) -> list[T]:
    return records if len(records) <= count else rng.sample(records, count)


def record(text: str, source: str, **labels: str) -> dict[str, Any]:
    return {"text": text, **{f"label_{k}": v for k, v in labels.items() if v}, "source": source}


def by_label(records: Iterable[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in records:
        groups[str(item.get(key))].append(item)
    return groups


def build(datasets: Path, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []

    banking = list(read(datasets / "banking77" / "train.jsonl"))
    for _, items in sorted(by_label(banking, "label_category").items()):
        for item in sample(items, BANKING_PER_CATEGORY, rng):
            calm = "none" if rng.random() < 0.4 else ""
            out.append(
                record(item["text"], "banking77", category=item["label_category"], difficult=calm)
            )

    cfpb = datasets / "cfpb_complaints"
    for name in ("train.jsonl", "train_extra.jsonl"):
        for item in read(cfpb / name):
            out.append(record(item["text"], "cfpb_complaints", category=item["label_category"]))

    for item in read(datasets / "uci_sentiment_sentences" / "train.jsonl"):
        out.append(
            record(
                item["text"],
                item["source"],
                sentiment=item["label_sentiment"],
                category=item.get("label_category", ""),
                difficult="none",
            )
        )

    emotions = list(read(datasets / "goemotions" / "train.jsonl"))
    for label, items in sorted(by_label(emotions, "label_sentiment").items()):
        if label == "None":
            continue
        for item in sample(items, GOEMOTIONS_PER_SENTIMENT, rng):
            out.append(record(item["text"], "goemotions", sentiment=label))
    angry = [e for e in emotions if e.get("label_difficult") == "angry"]
    for item in sample(angry, 1200, rng):
        out.append(record(item["text"], "goemotions", difficult="angry"))
    calm_comments = [
        e
        for e in emotions
        if e.get("label_difficult") != "angry"
        and not HOSTILE_EMOTIONS & set(str(e.get("source_label", "")).split(","))
    ]
    for item in sample(calm_comments, 1200, rng):
        out.append(record(item["text"], "goemotions", difficult="none"))

    tweets = [
        *read(datasets / "semeval2017_task4a" / "train.jsonl"),
        *read(datasets / "tweeteval" / "sentiment.jsonl"),
    ]
    seen: set[str] = set()
    distinct: list[tuple[str, dict[str, Any]]] = []
    for tweet in tweets:
        text = clean_tweet(tweet["text"])
        key = " ".join(text.lower().split())
        if key not in seen:
            seen.add(key)
            distinct.append((text, tweet))
    for label in ("negative", "neutral", "positive"):
        pool = [(text, tweet) for text, tweet in distinct if tweet["label_sentiment"] == label]
        for text, tweet in sample(pool, TWEETS_PER_SENTIMENT, rng):
            calm = "none" if label == "neutral" and rng.random() < 0.5 else ""
            out.append(record(text, tweet["source"], sentiment=label, difficult=calm))

    tweeteval = datasets / "tweeteval"
    emotion = list(read(tweeteval / "emotion.jsonl"))
    for item in emotion:
        angry_tweet = item.get("label_difficult") == "angry"
        if angry_tweet or rng.random() < 0.6:
            out.append(
                record(
                    clean_tweet(item["text"]),
                    "tweeteval/emotion",
                    sentiment=item.get("label_sentiment", ""),
                    difficult="angry" if angry_tweet else "none",
                )
            )
    for item in read(tweeteval / "irony.jsonl"):
        ironic = item.get("label_difficult") == "jester"
        out.append(
            record(
                clean_tweet(item["text"]),
                "tweeteval/irony",
                difficult="jester" if ironic else "none",
            )
        )
    offensive = by_label(read(tweeteval / "offensive.jsonl"), "label_difficult")
    for item in sample(offensive["abusive"], 1500, rng):
        out.append(record(clean_tweet(item["text"]), "tweeteval/offensive", difficult="abusive"))
    for item in sample(offensive["None"], 1500, rng):
        out.append(record(clean_tweet(item["text"]), "tweeteval/offensive", difficult="none"))
    hate = by_label(read(tweeteval / "hate.jsonl"), "label_difficult")
    for item in sample(hate["abusive"], 500, rng):
        out.append(record(clean_tweet(item["text"]), "tweeteval/hate", difficult="abusive"))
    davidson = by_label(
        read(datasets / "davidson_hate_offensive" / "train.jsonl"), "label_difficult"
    )
    for item in sample(davidson["abusive"], 800, rng):
        out.append(record(clean_tweet(item["text"]), "davidson", difficult="abusive"))

    return [r for r in out if len(r["text"].strip()) >= 2 and len(r) > 2]


def build_evaluation(datasets: Path) -> list[dict[str, Any]]:
    """Suggestions (and non-suggestions) of SemEval-2019 task 9: measured, never trained on."""
    items = read(datasets / "semeval2019_task9_suggestions" / "train.jsonl")
    return [
        record(item["text"], "semeval2019_suggestions", category=item.get("label_category", ""))
        for item in items
        if item.get("label_category")
    ]


def write(records: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for item in records:
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--out", type=Path, default=Path("build/training/public.jsonl"))
    parser.add_argument(
        "--eval-out",
        type=Path,
        default=None,
        help="Also write the suggestions kept out of training, to evaluate on.",
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    records = build(args.datasets, args.seed)
    write(records, args.out)
    print(f"{len(records)} records -> {args.out}")
    for tag in ("sentiment", "category", "difficult"):
        counts = Counter(r[f"label_{tag}"] for r in records if f"label_{tag}" in r)
        print(f"  {tag}: {dict(counts.most_common())}")
    print(f"  sources: {dict(Counter(r['source'] for r in records).most_common())}")
    if args.eval_out is not None:
        evaluation = build_evaluation(args.datasets)
        write(evaluation, args.eval_out)
        print(f"{len(evaluation)} evaluation records -> {args.eval_out}")


if __name__ == "__main__":
    main()
