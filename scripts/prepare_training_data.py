"""Builds the training file of the shipped model from the public labelled datasets.

    .venv/bin/python scripts/prepare_training_data.py --datasets ../shared/datasets \
        --out build/training/public.jsonl

Only sources whose licence allows training a model that is redistributed are used; the project's
own corpus (services/classifier/corpus/) is added at training time. Large classes are sampled
down so no label swamps the others. The choices, with reasons:

- banking77 (CC BY 4.0): every category label; a sample also as difficult type ``none`` (polite,
  single-sentence banking queries).
- cfpb_complaints (US public data): every category label.
- uci_sentiment_sentences (Apache-2.0): sentiment, and ``praise`` for positive product and
  restaurant reviews.
- goemotions (Apache-2.0): sentiment (up to 8,000 per class); ``angry`` for anger; a sample of
  neutral comments as ``none``.
- davidson_hate_offensive (MIT): a sample of ``abusive``.
- tweeteval emotion / irony / offensive: ``angry``, ``jester`` and a sample of ``abusive``;
  the only real data there is for sarcasm. Model weights do not contain the tweets.
- semeval2017_task4a and tweeteval sentiment: sentiment of public posts (up to
  ``TWEETS_PER_SENTIMENT`` per class). Social messages are one of the product's channels, and
  Reddit comments alone taught the model little about them: on SemEval's 2016 test tweets, held
  out of training, sentiment macro-recall rose from 0.56 to 0.65 with these added.
- Left out: semeval2019_task9_suggestions (non-commercial share-alike licence).
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

TWEETS_PER_SENTIMENT = 5000
RT_PREFIX = re.compile(r"^(?:RT\s+)?@\w+:?\s*")
MENTION = re.compile(r"@\w+")


def read(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def clean_tweet(text: str) -> str:
    text = RT_PREFIX.sub("", text.strip())
    return MENTION.sub("@user", text).strip()


def sample(records: list[T], count: int, rng: random.Random) -> list[T]:
    return records if len(records) <= count else rng.sample(records, count)


def record(text: str, source: str, **labels: str) -> dict[str, Any]:
    return {"text": text, **{f"label_{k}": v for k, v in labels.items()}, "source": source}


def build(datasets: Path, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []

    banking = list(read(datasets / "banking77" / "train.jsonl"))
    for item in banking:
        out.append(record(item["text"], "banking77", category=item["label_category"]))
    for item in sample(banking, 1500, rng):
        out.append(record(item["text"], "banking77", difficult="none"))

    for item in read(datasets / "cfpb_complaints" / "train.jsonl"):
        out.append(record(item["text"], "cfpb_complaints", category=item["label_category"]))

    for item in read(datasets / "uci_sentiment_sentences" / "train.jsonl"):
        labels = {"sentiment": item["label_sentiment"]}
        if item.get("label_category"):
            labels["category"] = item["label_category"]
        out.append(record(item["text"], item["source"], **labels))

    emotions = list(read(datasets / "goemotions" / "train.jsonl"))
    for label in ("negative", "neutral", "positive"):
        pool = [e for e in emotions if e.get("label_sentiment") == label]
        for item in sample(pool, 8000, rng):
            out.append(record(item["text"], "goemotions", sentiment=label))
    for item in (e for e in emotions if e.get("label_difficult") == "angry"):
        out.append(record(item["text"], "goemotions", difficult="angry"))
    neutral = [e for e in emotions if e.get("label_difficult") == "none"]
    for item in sample(neutral, 2000, rng):
        out.append(record(item["text"], "goemotions", difficult="none"))

    abusive = [
        e
        for e in read(datasets / "davidson_hate_offensive" / "train.jsonl")
        if e.get("label_difficult") == "abusive"
    ]
    for item in sample(abusive, 1500, rng):
        out.append(record(clean_tweet(item["text"]), "davidson", difficult="abusive"))

    tweeteval = datasets / "tweeteval"
    for item in read(tweeteval / "emotion.jsonl"):
        if item.get("label_difficult") == "angry":
            out.append(record(clean_tweet(item["text"]), "tweeteval/emotion", difficult="angry"))
    for item in read(tweeteval / "irony.jsonl"):
        if item.get("label_difficult") == "jester":
            out.append(record(clean_tweet(item["text"]), "tweeteval/irony", difficult="jester"))
    offensive = [
        e for e in read(tweeteval / "offensive.jsonl") if e.get("label_difficult") == "abusive"
    ]
    for item in sample(offensive, 1500, rng):
        out.append(record(clean_tweet(item["text"]), "tweeteval/offensive", difficult="abusive"))

    tweets = [
        *read(datasets / "semeval2017_task4a" / "train.jsonl"),
        *read(tweeteval / "sentiment.jsonl"),
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
        tweet_pool = [
            (text, tweet) for text, tweet in distinct if tweet.get("label_sentiment") == label
        ]
        for text, tweet in sample(tweet_pool, TWEETS_PER_SENTIMENT, rng):
            out.append(record(text, tweet["source"], sentiment=label))

    return [r for r in out if len(r["text"]) >= 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--out", type=Path, default=Path("build/training/public.jsonl"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    records = build(args.datasets, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as handle:
        for item in records:
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")
    print(f"{len(records)} records -> {args.out}")
    for tag in ("sentiment", "category", "difficult"):
        counts = Counter(r[f"label_{tag}"] for r in records if f"label_{tag}" in r)
        print(f"  {tag}: {dict(counts.most_common())}")
    print(f"  sources: {dict(Counter(r['source'] for r in records).most_common())}")


if __name__ == "__main__":
    main()
