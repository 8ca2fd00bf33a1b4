"""faust alone, as the router worker runs it: consume records and produce one for each.

A reference for ``bench/router_worker.py``, run by it as a subprocess on the same broker: a
``TriageApp`` on the same Kafka profile, with the stream workers' garbage-collector settings,
reads ``--count`` records from ``--source`` (from the beginning, in batches as the router's
inbox applier takes them), sends each one's value to ``--sink`` and waits for the broker, then
acknowledges the batch, like the applier's outputs without the engine. It prints one line,
``faust alone: <records> records in <seconds> s``, timed from the first record taken to the
last acknowledged, and then keeps running until it is stopped.

    .venv/bin/python bench/faust_alone.py --bootstrap HOST:PORT --prefix P --profile embedded \\
        --source router.inbox --sink bench.sink --count 3000
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from typing import Literal

import faust

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.common.faust_app import TriageApp
from services.common.heap import settle
from services.common.kafka import KafkaSettings
from services.common.streams import send_acknowledged

BATCH = 100  # as the router's inbox applier takes records
WAIT_S = 0.01


def build(
    kafka: KafkaSettings, source: str, sink: str, count: int, partitions: int, workdir: Path
) -> faust.App:
    app = TriageApp(
        f"bench-faust-{uuid.uuid4().hex[:8]}",
        **kafka.faust_options(),
        store="memory://",
        datadir=str(workdir),
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
    )

    def raw_topic(name: str, partitions: int | None = None) -> faust.TopicT:
        return app.topic(
            kafka.topic_prefix + name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions,
        )

    source_topic = raw_topic(source)
    sink_topic = raw_topic(sink, partitions)
    progress = {"done": 0, "started": 0.0}

    @app.agent(source_topic, name="pass-through")
    async def pass_through(stream: faust.StreamT[bytes]) -> None:
        assert isinstance(stream, faust.Stream)
        async for events in stream.take_events(BATCH, within=WAIT_S):
            if not progress["done"]:
                progress["started"] = time.perf_counter()
            refused = await send_acknowledged(
                sink_topic, [(event.key, event.value) for event in events]
            )
            if any(error is not None for error in refused):
                raise SystemExit(f"the broker refused a record: {refused}")
            for event in events:
                await stream.ack(event)
            before = progress["done"]
            progress["done"] += len(events)
            if before < count <= progress["done"]:
                seconds = time.perf_counter() - progress["started"]
                print(f"faust alone: {progress['done']} records in {seconds:.3f} s", flush=True)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--prefix", default="")
    parser.add_argument("--profile", choices=["embedded", "kafka"], default="embedded")
    parser.add_argument("--source", required=True, help="Topic to read (without the prefix).")
    parser.add_argument("--sink", required=True, help="Topic to write (without the prefix).")
    parser.add_argument("--partitions", type=int, default=6, help="Of the sink topic.")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()
    profile: Literal["embedded", "kafka"] = args.profile
    kafka = KafkaSettings(bootstrap=args.bootstrap, topic_prefix=args.prefix, profile=profile)
    app = build(kafka, args.source, args.sink, args.count, args.partitions, args.workdir)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    settle()
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
