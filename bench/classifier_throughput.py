"""Texts/s of the shipped model next to plain sentence-transformers, and of the faust pipeline.

Same texts, same run, three sets: ~20 words, ~60 words, and a realistic mix of lengths (the
project's corpus in a shuffled arrival order: one-line chats to long e-mails).

- reference: plain sentence-transformers all-MiniLM-L6-v2 fp32 ``encode``, called on 32 texts
  at a time in arrival order, as a stream delivers them;
- the shipped model as ``triage classify`` runs it (tokenizer, int8 ONNX encoder and heads,
  language check and facts), 32 texts at a time; the torch backend of the same model too;
- the faust pipeline: a ``triage classifier`` worker on the embedded broker tagging the mixed
  set from feedback.received to feedback.classified, against the shipped model in-process
  (timed before and after the pipeline);
- the macro F1 of both backends on the test share of the project's corpus.

    .venv/bin/python bench/classifier_throughput.py [--texts 1000] [--batch 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from services.classifier.model import TriageModel, model_path_of_embedder
from services.classifier.offline import classify_lines
from services.classifier.training import evaluate, load_examples, three_way_split
from services.common.broker import EmbeddedBroker, free_port
from services.common.health import wait_until_ready
from services.common.kafka import KafkaSettings, ensure_topics
from services.common.messages import Channel, Customer, FeedbackReceived, Source, event_id_for
from services.common.topics import ALL_TOPICS, feedback_classified, feedback_received

ROOT = Path(__file__).parents[1]
CORPUS = ROOT / "services" / "classifier" / "corpus"
SENTENCES = [
    "My order arrived broken and the replacement you promised never came.",
    "I have been on hold for forty minutes twice this week.",
    "You charged me twice for the same booking and nobody answers my emails.",
    "The engineer was polite and fixed the router quickly, thank you.",
    "Please add an option to pay by bank transfer in the app.",
    "Your agent was rude and hung up on me when I asked for a manager.",
    "The refund of £49.99 for order A-55812 still has not reached my account.",
    "Why does the website log me out every time I open my statements?",
    "I was told I would get a callback by Friday and nothing happened.",
    "This is the third time the delivery window was missed without a message.",
]


def make_texts(count: int, words: int, seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        parts: list[str] = []
        while sum(len(p.split()) for p in parts) < words:
            parts.append(rng.choice(SENTENCES))
        texts.append(" ".join(parts))
    return texts


def mixed_texts(count: int, seed: int = 5) -> list[str]:
    """The corpus's messages in a random arrival order: chats, e-mails, call notes, posts."""
    texts = [e.text for e in load_examples(sorted(CORPUS.glob("*.jsonl")))]
    random.Random(seed).shuffle(texts)
    return (texts * (count // len(texts) + 1))[:count]


def rate(run: Callable[[list[str]], object], texts: list[str], batch: int) -> float:
    """Texts/s of ``run`` over the texts, ``batch`` at a time in their order."""
    run(texts[:batch])
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        run(texts[start : start + batch])
    return len(texts) / (time.perf_counter() - started)


def best_of(runs: int, measure: Callable[[], float]) -> float:
    """The best of a few measurements: the run least disturbed by the rest of the machine."""
    return max(measure() for _ in range(runs))


def as_classify(model: TriageModel, batch: int) -> Callable[[list[str]], object]:
    """What ``triage classify`` does with a batch of input lines."""

    def run(texts: list[str]) -> object:
        lines = [json.dumps({"text": text}) for text in texts]
        return list(classify_lines(model, lines, batch_size=batch))

    return run


def plain_encoder() -> Callable[[list[str]], object]:
    """Plain sentence-transformers all-MiniLM-L6-v2, fp32, as packaged."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(str(model_path_of_embedder()), device="cpu")

    def run(texts: list[str]) -> object:
        return encoder.encode(texts, batch_size=len(texts))

    return run


@dataclass(frozen=True)
class WorkerFigures:
    """What the worker's own metrics say about a pipeline run."""

    batches: int
    texts: int
    model_seconds: float

    @classmethod
    def scrape(cls, exposition: str) -> WorkerFigures:
        """The batch and model-time figures of a classifier's /metrics page."""
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(exposition):
            for sample in family.samples:
                values[sample.name] = sample.value
        return cls(
            batches=int(values.get("triage_classifier_batch_size_count", 0)),
            texts=int(values.get("triage_classifier_batch_size_sum", 0)),
            model_seconds=values.get("triage_classifier_model_duration_seconds_sum", 0.0),
        )


async def pipeline_rate(
    kafka: KafkaSettings, texts: list[str], port: int, batch: int
) -> tuple[float, WorkerFigures]:
    await ensure_topics(kafka, ALL_TOPICS)
    env = {
        **os.environ,
        "TRIAGE_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "TRIAGE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "TRIAGE_CLASSIFIER_APP_ID": f"bench-{uuid.uuid4().hex[:6]}",
        "TRIAGE_CLASSIFIER_BATCH_SIZE": str(batch),
        "TRIAGE_CLASSIFIER_LOG_LEVEL": "WARNING",
        "TRIAGE_CLASSIFIER_DATA_DIR": tempfile.mkdtemp(prefix="triage-bench-"),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "classifier", "--port", str(port)], cwd=ROOT, env=env
    )
    try:
        ready_url = f"http://127.0.0.1:{port}/readyz"
        if not await asyncio.to_thread(wait_until_ready, ready_url, timeout_s=120, process=worker):
            raise RuntimeError("the classifier worker did not become ready")
        out_topic = kafka.topic(feedback_classified)
        consumer = AIOKafkaConsumer(**kafka.client_kwargs(), group_id=None)
        await consumer.start()
        partitions = [TopicPartition(out_topic, p) for p in range(feedback_classified.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all", linger_ms=5)
        await producer.start()
        now = datetime.now(UTC)
        events = [
            FeedbackReceived(
                event_id=event_id_for("bench", f"{n}-{now.timestamp()}"),
                source=Source(platform="bench", event_id=str(n)),
                channel=Channel.EMAIL,
                customer=Customer(id=f"cust-{n % 500}"),
                text=text,
                received_at=now,
            )
            for n, text in enumerate(texts)
        ]
        started = time.perf_counter()
        for event in events:
            await producer.send(
                kafka.topic(feedback_received),
                event.model_dump_json().encode(),
                key=event.customer.id.encode(),
            )
        await producer.flush()
        seen = 0
        while seen < len(texts):
            batch_out = await consumer.getmany(timeout_ms=1000)
            seen += sum(len(records) for records in batch_out.values())
            if time.perf_counter() - started > 900:
                raise RuntimeError(f"only {seen} of {len(texts)} classified")
        elapsed = time.perf_counter() - started
        await producer.stop()
        await consumer.stop()
        exposition = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        )
        return len(texts) / elapsed, WorkerFigures.scrape(exposition.decode())
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()


def backend_f1(models: dict[str, TriageModel]) -> dict[str, dict[str, float]]:
    """Macro F1 per tag of each backend on the test share of the project's corpus."""
    reference = next(iter(models.values()))
    seed = int(reference.metadata.hyperparameters.get("seed", 13))
    share = float(reference.metadata.hyperparameters.get("holdout", 0.2))
    test = three_way_split(load_examples(sorted(CORPUS.glob("*.jsonl"))), holdout=share, seed=seed)[
        2
    ]
    return {
        name: {
            tag: entry["macro_f1"] for tag, entry in evaluate(model, test, real_only=False).items()
        }
        for name, model in models.items()
    }


def line(name: str, value: float, reference: float | None = None) -> str:
    text = f"  {name:<44} {value:8.1f} texts/s"
    return text + (f"  ratio {value / reference:.2f}x" if reference else "")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--runs", type=int, default=2, help="Measurements of each, best kept.")
    args = parser.parse_args()
    model = TriageModel.load(backend="onnx")
    torch_model = TriageModel.load(backend="torch")
    plain = plain_encoder()
    shipped = as_classify(model, args.batch)
    shipped_torch = as_classify(torch_model, args.batch)
    sets = {
        "~20 words": make_texts(args.texts, 20),
        "~60 words": make_texts(args.texts, 60),
        "mixed lengths (corpus)": mixed_texts(args.texts),
    }
    print(
        f"model {model.version}; {args.texts} texts a set, batch {args.batch}, "
        f"cores: {os.cpu_count()}, best of {args.runs}"
    )
    ratios = {}
    for name, texts in sets.items():
        words = sum(len(t.split()) for t in texts) / len(texts)
        reference = best_of(args.runs, partial(rate, plain, texts, args.batch))
        ours = best_of(args.runs, partial(rate, shipped, texts, args.batch))
        torch_rate = best_of(args.runs, partial(rate, shipped_torch, texts, args.batch))
        ratios[name] = ours / reference
        print(f"{name} (mean {words:.0f} words):")
        print(line("plain sentence-transformers encode (fp32)", reference))
        print(line("shipped model, onnx int8 (triage classify)", ours, reference))
        print(line("shipped model, torch backend", torch_rate, reference))
    mixed = sets["mixed lengths (corpus)"]
    before = rate(shipped, mixed, args.batch)
    with EmbeddedBroker(port=free_port()) as broker:
        kafka = KafkaSettings(bootstrap=broker.bootstrap, topic_prefix="bench-clf.")
        piped, worker = await pipeline_rate(kafka, mixed, free_port(), args.batch)
    after = rate(shipped, mixed, args.batch)
    in_process = (before + after) / 2
    elapsed = len(mixed) / piped
    print("faust pipeline on the embedded broker, mixed lengths:")
    print(line(f"shipped model in-process ({before:.1f} before, {after:.1f} after)", in_process))
    print(line("faust pipeline", piped, in_process))
    print(
        f"  in the worker: {worker.batches} batches of {worker.texts / max(worker.batches, 1):.1f}"
        f" texts on average; the model ran {worker.model_seconds:.1f} s of the {elapsed:.1f} s"
        f" ({worker.model_seconds / elapsed:.0%})"
    )
    for name, scores in backend_f1({"onnx int8": model, "torch": torch_model}).items():
        figures = "  ".join(f"{tag} {value:.3f}" for tag, value in scores.items())
        print(f"corpus test share macro F1, {name:<9}: {figures}")
    summary = " ".join(
        f"{name.split(' (')[0].replace(' ', '_').replace('~', '')}={r:.2f}"
        for name, r in ratios.items()
    )
    print(f"shipped/plain {summary} pipeline/shipped={piped / in_process:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
