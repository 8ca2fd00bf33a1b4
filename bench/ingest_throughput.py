"""Accepted events/s through the ingest HTTP API next to raw aiokafka produce, same run.

Starts an embedded broker and the ingest service (a real uvicorn process on loopback), posts the
same events through HTTP with a concurrent client, then produces the same events straight to
Kafka with aiokafka at the same concurrency and the same producer settings. Prints both rates,
the ratio, and HTTP latency percentiles.

    .venv/bin/python bench/ingest_throughput.py [--events 5000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer

from services.common.broker import EmbeddedBroker, free_port
from services.common.health import wait_until_ready
from services.common.kafka import KafkaSettings, ensure_topics
from services.common.topics import feedback_received
from services.ingest.settings import DEV_API_KEY

ROOT = Path(__file__).parents[1]
TEXTS = [
    "My order #A-{n} arrived broken and nobody answers my emails. I want a refund of £49.99.",
    "Third time I'm writing about the double charge on my card. Fix it today or I cancel.",
    "Thanks to Maria in your Leeds branch, she sorted my broadband in five minutes!",
    "The app logs me out every time I open the statements page. Very frustrating.",
]


def make_events(count: int, run: str) -> list[dict[str, Any]]:
    """Realistic canonical events of about 300 bytes each."""
    channels = ["email", "chat", "social", "web"]
    return [
        {
            "id": f"bench-{run}-{n}",
            "channel": channels[n % len(channels)],
            "customer": {"id": f"cust-{n % 997}", "tier": "standard", "language": "en"},
            "text": TEXTS[n % len(TEXTS)].format(n=n),
            "attributes": {"source": "bench"},
        }
        for n in range(count)
    ]


async def post_all(
    base: str, events: list[dict[str, Any]], concurrency: int
) -> tuple[float, list[float], dict[int, int]]:
    """Post events with ``concurrency`` requests in flight; return seconds, latencies, codes.

    The client is aiohttp: it costs a fraction of the server's CPU per request, so on a small
    machine the figure measures the service, not the load generator.
    """
    latencies: list[float] = []
    codes: dict[int, int] = {}
    bodies = [json.dumps(event).encode() for event in events]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    headers = {"Authorization": f"Bearer {DEV_API_KEY}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, connector=connector, headers=headers) as session:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                async with session.post("/v1/feedback", data=body) as response:
                    await response.read()
                    latencies.append(time.perf_counter() - started)
                    codes[response.status] = codes.get(response.status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies, codes


async def produce_all(
    kafka: KafkaSettings, topic: str, events: list[dict[str, Any]], concurrency: int
) -> float:
    """Produce the same events with aiokafka, ``concurrency`` sends awaited at a time."""
    producer = AIOKafkaProducer(
        **kafka.client_kwargs(), acks="all", enable_idempotence=False, linger_ms=5
    )
    await producer.start()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for event in events:
        queue.put_nowait(event)

    async def worker() -> None:
        while not queue.empty():
            event = queue.get_nowait()
            await producer.send_and_wait(
                topic, json.dumps(event).encode(), key=event["customer"]["id"].encode()
            )

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started
    finally:
        await producer.stop()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()

    with EmbeddedBroker(port=free_port()) as broker:
        kafka = KafkaSettings(bootstrap=broker.bootstrap, topic_prefix="bench-http.")
        raw_kafka = KafkaSettings(bootstrap=broker.bootstrap, topic_prefix="bench-raw.")
        await ensure_topics(raw_kafka, [feedback_received])
        port = free_port()
        env = {
            **os.environ,
            "TRIAGE_KAFKA_BOOTSTRAP": broker.bootstrap,
            "TRIAGE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
            "TRIAGE_INGEST_LOG_LEVEL": "WARNING",
            # The benchmark posts with one key as fast as it can: measure ingest, not the limit.
            "TRIAGE_INGEST_RATE_LIMIT_PER_S": "1000000",
            "TRIAGE_INGEST_RATE_LIMIT_BURST": "1000000",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "ingest", "--port", str(port)],
            cwd=ROOT,
            env=env,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            if not wait_until_ready(f"{base}/readyz", timeout_s=30, process=server):
                raise RuntimeError("ingest did not become ready")
            warm = make_events(200, "warm")
            await post_all(base, warm, args.concurrency)
            await produce_all(raw_kafka, raw_kafka.topic(feedback_received), warm, args.concurrency)

            events = make_events(args.events, "http")
            http_s, latencies, codes = await post_all(base, events, args.concurrency)
            raw_events = make_events(args.events, "raw")
            raw_s = await produce_all(
                raw_kafka, raw_kafka.topic(feedback_received), raw_events, args.concurrency
            )
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(15)

    http_rate = args.events / http_s
    raw_rate = args.events / raw_s
    print(f"events: {args.events}, concurrency: {args.concurrency}, cores: {os.cpu_count()}")
    print(f"status codes: {dict(sorted(codes.items()))}")
    print(f"raw aiokafka produce (acks=all, send_and_wait): {raw_rate:8.0f} events/s")
    print(f"ingest HTTP API, accepted (202 after broker ack): {http_rate:8.0f} events/s")
    print(f"ratio HTTP / raw: {http_rate / raw_rate:.2f}")
    print(
        "HTTP latency ms: "
        f"p50 {statistics.median(latencies) * 1000:.1f}, "
        f"p90 {percentile(latencies, 0.90) * 1000:.1f}, "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
