"""Texts/s of the raw model in-process next to texts/s through the running classifier pipeline.

Same texts, same run: first the model tags them in this process (batch size as the service),
then a `triage classifier` worker on the embedded broker tags them from feedback.received to
feedback.classified, timed from the first record produced to the last classified record read.
Then the int8 ONNX embedder: its raw speed, and the heads' macro F1 with each embedder on the
held-out share of the project's labelled corpus (texts the shipped model was not trained on).

    .venv/bin/python bench/classifier_throughput.py [--texts 2000] [--words 60] [--batch 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from services.classifier.model import TriageModel
from services.classifier.onnx_backend import OnnxEmbedder
from services.classifier.training import evaluate, holdout_split, load_examples
from services.common.broker import EmbeddedBroker, free_port
from services.common.health import wait_until_ready
from services.common.kafka import KafkaSettings, ensure_topics
from services.common.messages import Channel, Customer, FeedbackReceived, Source, event_id_for
from services.common.topics import ALL_TOPICS, feedback_classified, feedback_received

ROOT = Path(__file__).parents[1]
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


def raw_rate(model: TriageModel, texts: list[str], batch: int) -> float:
    model.predict(texts[:batch], batch_size=batch)
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        model.predict(texts[start : start + batch], batch_size=batch)
    return len(texts) / (time.perf_counter() - started)


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


def accuracy_delta(
    torch_model: TriageModel, onnx_model: TriageModel
) -> dict[str, tuple[float, float]]:
    corpus = sorted((ROOT / "services" / "classifier" / "corpus").glob("*.jsonl"))
    seed = int(torch_model.metadata.hyperparameters.get("seed", 13))
    share = float(torch_model.metadata.hyperparameters.get("holdout", 0.2))
    _, held_out = holdout_split(load_examples(corpus), share=share, seed=seed)
    reference = evaluate(torch_model, held_out, real_only=False)
    candidate = evaluate(onnx_model, held_out, real_only=False)
    return {tag: (reference[tag]["macro_f1"], candidate[tag]["macro_f1"]) for tag in reference}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--words", type=int, default=60)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    texts = make_texts(args.texts, args.words)
    model = TriageModel.load()
    raw_before = raw_rate(model, texts, args.batch)
    with EmbeddedBroker(port=free_port()) as broker:
        kafka = KafkaSettings(bootstrap=broker.bootstrap, topic_prefix="bench-clf.")
        piped, worker = await pipeline_rate(kafka, texts, free_port(), args.batch)
    raw_after = raw_rate(model, texts, args.batch)
    raw = (raw_before + raw_after) / 2
    onnx_model = TriageModel.load(embedder=OnnxEmbedder())
    onnx = raw_rate(onnx_model, texts, args.batch)
    deltas = accuracy_delta(model, onnx_model)
    print(
        f"texts: {args.texts} of ~{args.words} words, batch {args.batch}, cores: {os.cpu_count()}"
    )
    print(
        f"raw model in-process (torch):      {raw:7.1f} texts/s"
        f" (mean of {raw_before:.1f} before and {raw_after:.1f} after the pipeline)"
    )
    print(f"faust pipeline on embedded broker: {piped:7.1f} texts/s")
    print(f"ratio pipeline / raw: {piped / raw:.2f}")
    elapsed = args.texts / piped
    print(
        f"  in the worker: {worker.batches} batches of {worker.texts / max(worker.batches, 1):.1f}"
        f" texts on average; the model ran {worker.model_seconds:.1f} s of the {elapsed:.1f} s"
        f" ({worker.model_seconds / elapsed:.0%}), at"
        f" {worker.texts / max(worker.model_seconds, 1e-9):.1f} texts/s"
    )
    print(f"raw model in-process (onnx int8):  {onnx:7.1f} texts/s, speed-up {onnx / raw:.2f}x")
    for tag, (reference, candidate) in deltas.items():
        print(
            f"held-out corpus macro F1 {tag:<10} torch {reference:.3f}  onnx int8 {candidate:.3f}"
            f"  delta {candidate - reference:+.3f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
