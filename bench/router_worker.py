"""Inbox records/s of the running router worker next to its engine alone and faust alone, in
the same run.

Starts an embedded broker and a `triage router` process (development roster, shipped service
levels), produces ``--messages`` pre-classified messages at once to ``feedback.classified``
while simulated agents (``tests/support/load.py``) accept, reply to and resolve what they are
offered through the agent API, and times the worker until it has applied every message: inbox
records applied (messages, agents' commands, clock ticks) per second, from the first message
produced to the last applied.

Then it reads the inbox records the worker applied, in order, from ``router.inbox`` and applies
the same records to a fresh :class:`Engine` in this process (``Engine.apply`` timed, as
``bench/router_decisions.py`` does); and runs faust alone on them (``bench/faust_alone.py``:
read each record, send one record for it, no engine). It ends with one line
``worker/engine ratio=<r> profile=<profile>``.

``--profile`` is the Kafka profile of the router and of this script's clients
(``TRIAGE_KAFKA_PROFILE``): ``embedded`` (the default, tuned for the embedded broker: one
record per produce batch) or ``kafka`` (the clients' defaults, as the services run against
Apache Kafka; the broker is still the embedded one).

    .venv/bin/python bench/router_worker.py [--messages 3000] [--profile embedded|kafka]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import TypeAdapter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.common.broker import EmbeddedBroker, free_port
from services.common.health import wait_until_ready
from services.common.heap import settle
from services.common.kafka import KafkaSettings, ensure_topics
from services.common.messages import (
    Channel,
    Customer,
    CustomerHistory,
    Facts,
    FeedbackClassified,
    FeedbackReceived,
    Money,
    Source,
    Tag,
    event_id_for,
)
from services.common.topics import ALL_TOPICS, cases_events, feedback_classified, router_inbox
from services.router.app import build_engine_factory
from services.router.commands import Inbound
from services.router.settings import RouterSettings
from tests.support.load import Agents
from tests.support.process import ServiceProcess

INBOX = TypeAdapter[Inbound](Inbound)
CATEGORIES = [
    "billing",
    "policy",
    "product_fault",
    "delay",
    "broken_promise",
    "communication",
    "access_inconvenience",
    "trust_privacy",
    "staff_conduct",
    "praise",
    "suggestion",
]
LANGUAGES = ["en", "en", "en", "fr", "de", "es", "pt"]
CHANNELS = [Channel.EMAIL, Channel.EMAIL, Channel.CHAT, Channel.SOCIAL]
APPLIED = re.compile(r'^triage_router_inbox_apply_seconds_(count|sum)\{kind="(\w+)"\} ([0-9.e+]+)$')
FAUST_ALONE = re.compile(r"faust alone: \d+ records in ([0-9.]+) s")  # after faust's spinner
FAUST_ALONE_TIMEOUT_S = 180
POLL_S = 1.0  # the metrics page costs the worker time: read it seldom, interpolate between


def classified(n: int, rng: random.Random, at: datetime) -> FeedbackClassified:
    """A classified message; one in ten is from an earlier customer (it joins their case)."""
    customer = f"c-{rng.randrange(n)}" if n and rng.random() < 0.1 else f"c-{n}"
    source = f"bench-{n}-{uuid.uuid4().hex[:8]}"
    received = FeedbackReceived(
        event_id=event_id_for("bench", source),
        source=Source(platform="bench", event_id=source),
        channel=rng.choice(CHANNELS),
        customer=Customer(id=customer),
        text="My order is late and nobody answers.",
        received_at=at,
    )
    amount = rng.choice([None, 20.0, 80.0, 300.0])
    return FeedbackClassified(
        event_id=received.event_id,
        feedback=received,
        sentiment=Tag(label="negative", probability=0.8),
        sentiment_score=-rng.random(),
        category=Tag(label=rng.choice(CATEGORIES), probability=0.8),
        difficult=Tag(label=rng.choice(["none", "none", "angry", "quiet"]), probability=0.7),
        needs_review=False,
        facts=Facts(
            amounts=(Money(amount=amount, currency="EUR", text="x"),) if amount else (),
            language=rng.choice(LANGUAGES),
        ),
        history=CustomerHistory(
            window_days=30,
            recent_messages=0,
            recent_complaints=0,
            recent_negative=0,
            repeat_complainer=False,
        ),
        model_version="bench",
        classified_at=at,
    )


@dataclass(frozen=True)
class WorkerRun:
    """What the worker applied in the timed window."""

    records: int
    by_kind: dict[str, int]
    seconds: float
    engine_seconds: float  # the worker's engine on these records (its metrics)
    busy: dict[str, float]  # share of a core each process used while the worker applied


async def applied(http: httpx.AsyncClient, base: str) -> tuple[dict[str, int], float]:
    """Inbox records the worker has applied so far, by kind, and the seconds its engine spent
    on them (from its metrics)."""
    counts: dict[str, int] = {}
    engine_s = 0.0
    for line in (await http.get(f"{base}/metrics")).text.splitlines():
        match = APPLIED.match(line)
        if match and match[1] == "count":
            counts[match[2]] = int(float(match[3]))
        elif match:
            engine_s += float(match[3])
    return counts, engine_s


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def produce(kafka: KafkaSettings, messages: list[FeedbackClassified]) -> None:
    """Hand every message to the producer at once, then wait for the broker."""
    producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all", linger_ms=5)
    await producer.start()
    try:
        topic = kafka.topic(feedback_classified)
        sends = [
            await producer.send(
                topic, m.model_dump_json().encode(), key=m.feedback.customer.id.encode()
            )
            for m in messages
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def drive_worker(
    kafka: KafkaSettings,
    router: ServiceProcess,
    broker_pid: int,
    messages: list[FeedbackClassified],
) -> WorkerRun:
    """Produce the messages with agents at work; time the worker until it applied them all."""
    assert router.process is not None
    pids = {"worker": router.process.pid, "broker": broker_pid, "this script": os.getpid()}
    agents = Agents(lambda: [router.base])
    working = asyncio.create_task(agents.run())
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            before, engine_before = await applied(http, router.base)
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            started = time.perf_counter()
            await produce(kafka, messages)
            samples = [(0.0, {kind: 0 for kind in before})]
            while samples[-1][1].get("feedback", 0) < len(messages):
                await asyncio.sleep(POLL_S)
                now, engine_s = await applied(http, router.base)
                counts = {kind: n - before.get(kind, 0) for kind, n in now.items()}
                samples.append((time.perf_counter() - started, counts))
            busy = {
                name: (cpu_seconds(pid) - cpu_before[name]) / samples[-1][0]
                for name, pid in pids.items()
            }
    finally:
        agents.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(working, 30)
    return finished(samples, len(messages), engine_s - engine_before, busy)


def finished(
    samples: list[tuple[float, dict[str, int]]],
    messages: int,
    engine_seconds: float,
    busy: dict[str, float],
) -> WorkerRun:
    """When the last message was applied, and the records applied by then, interpolated
    between the two metrics readings around it (records are applied at a steady pace)."""
    (t0, before), (t1, after) = samples[-2], samples[-1]
    f0, f1 = before.get("feedback", 0), after.get("feedback", 0)
    share = (messages - f0) / (f1 - f0)
    by_kind = {
        kind: round(before.get(kind, 0) + share * (after[kind] - before.get(kind, 0)))
        for kind in after
    }
    records = sum(by_kind.values())
    # The engine time read with the last sample covers every record applied by then.
    engine_s = engine_seconds * records / max(1, sum(after.values()))
    return WorkerRun(records, by_kind, t0 + share * (t1 - t0), engine_s, busy)


async def inbox_records(kafka: KafkaSettings, count: int) -> list[bytes]:
    """The first ``count`` records of the inbox, in order."""
    consumer = AIOKafkaConsumer(**kafka.client_kwargs(), enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(kafka.topic(router_inbox), 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        values: list[bytes] = []
        while len(values) < count:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            values += [record.value for record in batch.get(tp, []) if record.value is not None]
        return values[:count]
    finally:
        await consumer.stop()


def engine_alone(values: list[bytes]) -> float:
    """Seconds the engine alone takes to apply these inbox records (parsing not timed)."""
    engine = build_engine_factory(RouterSettings())()
    inbound = [INBOX.validate_json(value) for value in values]
    settle()  # the collector as the worker runs with
    elapsed = 0.0
    for message in inbound:
        started = time.perf_counter()
        engine.apply(message, message.at)
        elapsed += time.perf_counter() - started
    return elapsed


def faust_alone(kafka: KafkaSettings, count: int, workdir: Path) -> float:
    """Seconds faust alone takes to read ``count`` inbox records and send one record for each
    (``bench/faust_alone.py``, a process of its own on the same broker)."""
    command = [
        sys.executable,
        str(Path(__file__).with_name("faust_alone.py")),
        f"--bootstrap={kafka.bootstrap}",
        f"--prefix={kafka.topic_prefix}",
        f"--profile={kafka.profile}",
        f"--source={router_inbox.name}",
        "--sink=bench.sink",
        f"--partitions={cases_events.partitions}",
        f"--count={count}",
        f"--workdir={workdir / 'faust-alone'}",
    ]
    with (workdir / "faust-alone.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log)
    # Stopped if it has not read them all by then (reading its output would wait forever).
    watchdog = threading.Timer(FAUST_ALONE_TIMEOUT_S, process.terminate)
    watchdog.start()
    try:
        assert process.stdout is not None
        for line in process.stdout:
            found = FAUST_ALONE.search(line.decode())
            if found:
                return float(found[1])
        raise SystemExit(f"faust alone ended early: {(workdir / 'faust-alone.log').read_text()}")
    finally:
        watchdog.cancel()
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


Profile = Literal["embedded", "kafka"]


async def run(count: int, seed: int, workdir: Path, profile: Profile) -> None:
    broker = EmbeddedBroker(port=free_port(), log_path=workdir / "broker.log")
    broker.start()
    router: ServiceProcess | None = None
    try:
        kafka = KafkaSettings(
            bootstrap=broker.bootstrap,
            topic_prefix=f"b{uuid.uuid4().hex[:8]}.",
            profile=profile,
        )
        await ensure_topics(kafka, ALL_TOPICS)
        env = {
            **os.environ,
            "TRIAGE_KAFKA_BOOTSTRAP": kafka.bootstrap,
            "TRIAGE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
            "TRIAGE_KAFKA_PROFILE": profile,
            "TRIAGE_ROUTER_APP_ID": f"bench-{uuid.uuid4().hex[:8]}",
            "TRIAGE_ROUTER_DATA_DIR": str(workdir / "router"),
            "TRIAGE_ROUTER_LOG_LEVEL": "WARNING",
        }
        for name in ("TRIAGE_ROUTER_ROSTER_FILE", "TRIAGE_ROUTER_SLA_FILE"):
            env.pop(name, None)  # the development roster and the shipped service levels
        router = ServiceProcess("router", env, workdir)
        router.start()
        assert router.process is not None
        ready = await asyncio.to_thread(
            wait_until_ready, f"{router.base}/readyz", timeout_s=120, process=router.process
        )
        if not ready:
            raise SystemExit(f"router not ready: {router.log.read_text()[-3000:]}")
        rng = random.Random(seed)
        at = datetime.now(UTC)
        messages = [classified(n, rng, at) for n in range(count)]
        assert broker.pid is not None
        worker = await drive_worker(kafka, router, broker.pid, messages)
        values = await inbox_records(kafka, worker.records)
        router.stop()
        faust_s = await asyncio.to_thread(faust_alone, kafka, len(values), workdir)
    finally:
        if router is not None:
            router.stop()
        broker.stop()
    engine_s = engine_alone(values)
    worker_rate = worker.records / worker.seconds
    engine_rate = len(values) / engine_s
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(worker.by_kind.items()))
    print(f"kafka profile: {profile}, messages: {count}")
    print(f"inbox records applied: {worker.records} ({kinds})")
    print(f"worker: {worker.seconds:.2f} s, {worker_rate:.0f} records/s")
    print(f"  of which its engine: {worker.engine_seconds:.2f} s")
    print("  busy (share of a core): " + ", ".join(f"{k} {v:.0%}" for k, v in worker.busy.items()))
    print(f"engine alone: {engine_s:.2f} s, {engine_rate:.0f} records/s")
    faust_rate = len(values) / faust_s
    print(f"faust alone (read one, send one): {faust_s:.2f} s, {faust_rate:.0f} records/s")
    print(f"worker/engine ratio={worker_rate / engine_rate:.2f} profile={profile}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000, help="Classified messages.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--profile",
        choices=["embedded", "kafka"],
        default="embedded",
        help="Kafka profile of the router and of this script's clients (TRIAGE_KAFKA_PROFILE).",
    )
    parser.add_argument("--workdir", type=Path, help="Keep the logs here (default: temporary).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="router-worker-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        task_run = run(args.messages, args.seed, workdir, args.profile)
        loop = asyncio.new_event_loop()
        main_task = loop.create_task(task_run)
        # SIGTERM cancels the run like Ctrl-C, so the broker and router it started are stopped.
        loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
        try:
            loop.run_until_complete(main_task)
        finally:
            loop.close()


if __name__ == "__main__":
    main()
