"""A faust worker never commits past a record it fetched but did not deliver (on the real
broker, with a faust app in this process).

Each scenario runs twice: on the workers' ``TriageApp``, where it must pass, and on a plain
``faust.App`` with faust's own transport, where the assertion that names the fault must fail
(faust-streaming alone commits those records unprocessed).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaProducer
from faust.types import TP, Message
from pydantic import ValidationError

from services.common.errors import ConfigurationError
from services.common.faust_app import FAUST_VERSION, TriageApp, check_faust_version
from services.common.faust_offsets import (
    ack_counts,
    first_dropped,
    first_skipped,
    never_committed,
    next_commit,
    read_again_from,
)
from services.common.kafka import KafkaSettings
from tests.support.kafka import inprocess_app


def test_only_a_jump_of_more_than_one_is_a_skip() -> None:
    assert first_skipped(None, 7) is None  # nothing delivered yet
    assert first_skipped(6, 7) is None
    assert first_skipped(7, 7) is None  # after a seek, the read offset is the next to read
    assert first_skipped(6, 9) == 7


def test_partitions_with_nothing_committed_are_those_of_acknowledged_topics() -> None:
    committed = {TP("in", 0): None, TP("in", 1): 0, TP("in", 2): 4, TP("changelog", 0): None}
    assert never_committed(committed, lambda topic: topic == "in") == [TP("in", 0), TP("in", 1)]


def test_the_first_dropped_record_per_partition_counts_acknowledged_topics_only() -> None:
    def message(topic: str, partition: int, offset: int) -> Message:
        return Message(topic, partition, offset, 0.0, 0, None, None, b"", None)

    class Event:
        def __init__(self, message: Message) -> None:
            self.message = message

    items = [
        Event(message("in", 0, 7)),
        message("in", 0, 5),
        Event(message("in", 1, 3)),
        Event(message("other", 0, 1)),
        object(),
    ]
    dropped = first_dropped(items, lambda topic: topic == "in")
    assert dropped == {TP("in", 0): 5, TP("in", 1): 3}


def test_a_partition_is_sought_back_to_dropped_records_never_forward() -> None:
    assert read_again_from(9, 3) == 3  # records 3-9 were delivered, then dropped
    assert read_again_from(3, 3) == 3
    # A seek to the committed offset (2) came between: the position is already before them.
    assert read_again_from(1, 3) is None
    assert read_again_from(None, 3) is None  # nothing committed: sought to the beginning


def test_only_a_record_of_this_generation_acknowledged_while_the_flow_runs_counts() -> None:
    assert ack_counts(4, 4, flow_active=True)
    assert not ack_counts(4, 4, flow_active=False)  # skipped by a stream during a rebalance
    assert not ack_counts(3, 4, flow_active=True)  # fetched before the last rebalance
    assert not ack_counts(None, 4, flow_active=True)


def test_a_commit_moves_only_over_a_run_that_starts_at_the_committed_offset() -> None:
    assert next_commit([], 5) == (None, 0)
    assert next_commit([6, 7, 8], 5) == (None, 0)  # record 5 is not done: nothing moves
    assert next_commit([5, 6, 7, 9], 5) == (8, 3)
    assert next_commit([5, 5, 6], 5) == (7, 3)  # a repeated offset does not end the run
    assert next_commit([3, 4], None) == (5, 2)  # nothing committed yet: faust's own start


def test_fetch_wait_is_short_on_the_embedded_broker_and_faust_s_on_kafka(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert KafkaSettings().worker_fetch_max_wait_ms() == 100
    assert KafkaSettings(profile="kafka").worker_fetch_max_wait_ms() is None
    monkeypatch.setenv("TRIAGE_KAFKA_FETCH_MAX_WAIT_MS", "250")
    assert KafkaSettings(profile="kafka").worker_fetch_max_wait_ms() == 250
    monkeypatch.setenv("TRIAGE_KAFKA_FETCH_MAX_WAIT_MS", "0")
    with pytest.raises(ValidationError, match="fetch_max_wait_ms"):
        KafkaSettings()


def test_the_fixes_run_only_on_the_faust_release_they_were_written_for() -> None:
    assert importlib.metadata.version("faust-streaming") == FAUST_VERSION
    check_faust_version(FAUST_VERSION)
    with pytest.raises(ConfigurationError, match=r"faust-streaming 0\.16\.0 is installed"):
        check_faust_version("0.16.0")


def test_an_app_gets_the_fixes_only_by_asking_for_them(tmp_path: Path) -> None:
    options = KafkaSettings().faust_options()
    with pytest.raises(ConfigurationError, match="triage-kafka:// scheme"):
        TriageApp("no-fixes", **{**options, "broker": "kafka://127.0.0.1:9092"})
    # A plain faust app on the scheme of the fixes is refused rather than half fixed.
    del options["fetch_max_wait_ms"]
    plain = faust.App("half-fixed", **options, datadir=str(tmp_path))
    with pytest.raises(ConfigurationError, match="needs a TriageApp"):
        plain.transport  # noqa: B018  # faust builds the transport on first use


def test_the_app_s_streams_use_faust_s_python_iterator(tmp_path: Path) -> None:
    """faust's compiled iterator acknowledges inline, past ``Consumer.ack``."""
    app = TriageApp("iterator", **KafkaSettings().faust_options(), datadir=str(tmp_path))
    iterator: Any = app.stream([1, 2]).__aiter__()
    assert iterator.ag_code.co_name == "_py_aiter"
    stock = faust.App("stock-iterator", broker="kafka://127.0.0.1:9092", datadir=str(tmp_path))
    stock_iterator: Any = stock.stream([1, 2]).__aiter__()
    assert stock_iterator.ag_code.co_name == "_c_aiter"  # what faust alone uses here


@dataclass(frozen=True)
class Faust:
    """The faust a scenario runs on: the workers' app, or faust's own code alone."""

    stock: bool

    def fault(self, what: str) -> AbstractContextManager[Any]:
        """Around a whole scenario: on faust's own code, the first assertion to fail must be
        the one whose message is ``what``; with the fixes, none may fail."""
        if self.stock:
            return pytest.raises(AssertionError, match=re.escape(what))
        return nullcontext()

    @property
    def patience_s(self) -> float:
        """How long to wait for records faust alone never delivers."""
        return 8.0 if self.stock else 30.0


@pytest.fixture(params=[False, True], ids=["with-fixes", "faust-alone"])
def faust_kind(request: pytest.FixtureRequest) -> Faust:
    return Faust(stock=request.param)


async def _until(condition: Any, timeout: float = 30.0, what: Any = None) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, (
            f"timed out: {what() if what else None}"
        )
        await asyncio.sleep(0.05)


async def _eventually(condition: Callable[[], bool], timeout: float) -> None:
    """Wait until ``condition`` holds or ``timeout`` passes (the caller asserts what it saw)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)


@asynccontextmanager
async def _reading_app(
    kafka: KafkaSettings, name: str, datadir: Path, faust_kind: Faust
) -> AsyncIterator[tuple[faust.App, str, list[int], AIOKafkaProducer]]:
    """A started faust app whose agent notes the offset of every record it is given, its
    topic's name, those offsets, and a producer."""
    app, topic = await inprocess_app(kafka, name, datadir, stock_faust=faust_kind.stock)
    seen: list[int] = []

    @app.agent(topic)
    async def read(stream: Any) -> None:
        async for event in stream.events():
            seen.append(event.message.offset)

    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    await producer.start()
    await app.start()
    try:
        yield app, topic.get_topic_name(), seen, producer
    finally:
        await app.stop()
        await producer.stop()


async def _produce(producer: AIOKafkaProducer, name: str, count: int) -> None:
    for n in range(count):
        await producer.send_and_wait(name, f"record {n}".encode())


async def test_records_fetched_but_not_delivered_are_read_again(
    kafka: KafkaSettings, tmp_path: Path, faust_kind: Faust
) -> None:
    """The fetcher moves past records the stream never saw (what a batch cut short by a
    rebalance, or a fetch in flight during recovery, leaves). faust alone counts them as a
    gap in the log and commits past them; the worker must read them again instead."""
    with faust_kind.fault("records 10-14 were skipped"):
        async with _reading_app(kafka, "offsets", tmp_path, faust_kind) as (
            app,
            name,
            seen,
            producer,
        ):
            await _produce(producer, name, 10)
            await _until(lambda: len(seen) == 10)
            fetcher = app.consumer._thread._consumer._fetcher  # type: ignore[attr-defined]
            # The fetch wait is the settings' (faust's own is 1.5 s).
            assert fetcher._fetch_max_wait_ms == (1500 if faust_kind.stock else 100)
            partition = TP(name, 0)
            consumer: Any = app.consumer  # the aiokafka driver's consumer, with its internals
            # The fetch position jumps ahead of the last delivered record (offset 9).
            await consumer._thread.seek_wait({partition: 15})
            consumer._read_offset[partition] = 9
            await _produce(producer, name, 15)
            await _until(lambda: 24 in seen, what=lambda: seen)
            await asyncio.sleep(1.0)
            await app.consumer.commit()
            assert sorted(set(seen)) == list(range(25)), "records 10-14 were skipped"
            assert len(seen) == 25, "no record delivered twice"
            assert consumer._committed_offset[partition] == 25


async def test_the_record_at_the_committed_offset_is_read_after_a_seek(
    kafka: KafkaSettings, tmp_path: Path, faust_kind: Faust
) -> None:
    """A rebalance seeks to the committed offset, and a fetch may then start one past it:
    faust alone takes that record as the next after the last one processed, and skips the
    record at the committed offset without seeing a jump."""
    with faust_kind.fault("record 5 was skipped"):
        async with _reading_app(kafka, "seek", tmp_path, faust_kind) as (app, name, seen, producer):
            await _produce(producer, name, 5)
            await _until(lambda: 4 in seen, what=lambda: seen)
            await app.consumer.commit()
            partition = TP(name, 0)
            consumer: Any = app.consumer
            assert consumer._committed_offset[partition] == 5

            await consumer.perform_seek()
            after_seek = consumer._read_offset[partition]
            await consumer._thread.seek_wait({partition: 6})
            consumer._read_offset[partition] = after_seek
            await _produce(producer, name, 5)
            await _until(lambda: 9 in seen, what=lambda: seen)
            await asyncio.sleep(1.0)
            assert sorted(set(seen)) == list(range(10)), "record 5 was skipped"


@dataclass
class Held:
    """A started faust app whose agent notes each record's offset once ``go_on`` is set."""

    app: Any
    name: str
    processed: list[int]
    go_on: asyncio.Event
    producer: AIOKafkaProducer

    @property
    def consumer(self) -> Any:
        return self.app.consumer  # the aiokafka driver's consumer, with its internals

    @property
    def partition(self) -> TP:
        return TP(self.name, 0)

    async def processed_and_committed(self, count: int) -> None:
        """Produce the first ``count`` records, and return once they are processed and
        committed."""
        await _produce(self.producer, self.name, count)
        await _until(lambda: count - 1 in self.processed, what=lambda: self.processed)
        await self.consumer.commit()
        assert self.consumer._committed_offset[self.partition] == count


@asynccontextmanager
async def _held_app(
    kafka: KafkaSettings, name: str, datadir: Path, *, stock_faust: bool
) -> AsyncIterator[Held]:
    app, topic = await inprocess_app(kafka, name, datadir, stock_faust=stock_faust)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    held = Held(app, topic.get_topic_name(), [], asyncio.Event(), producer)
    held.go_on.set()

    @app.agent(topic)
    async def read(stream: Any) -> None:
        async for event in stream.events():
            await held.go_on.wait()
            held.processed.append(event.message.offset)

    await producer.start()
    await app.start()
    try:
        yield held
    finally:
        await app.stop()
        await producer.stop()


async def test_records_dropped_from_a_stream_buffer_are_read_again(
    kafka: KafkaSettings, tmp_path: Path, faust_kind: Faust
) -> None:
    """faust empties the stream buffers when it resumes the flow, which at the end of a
    recovery comes after the seek to the committed offsets: what was fetched in between is
    dropped. Those records must be read again, and the commit must reach the end."""
    with faust_kind.fault("dropped records were not read again"):
        async with _held_app(kafka, "dropped", tmp_path, stock_faust=faust_kind.stock) as held:
            held.go_on.clear()  # the agent holds record 0; the rest wait in the stream's buffer
            app, processed, consumer = held.app, held.processed, held.consumer
            partition = held.partition
            await _produce(held.producer, held.name, 10)
            await _until(lambda: consumer._read_offset.get(partition) == 9)
            app.flow_control.resume()  # what the end of a recovery does: the buffers are emptied
            held.go_on.set()
            await _eventually(lambda: 9 in processed, faust_kind.patience_s)
            await asyncio.sleep(1.0)
            assert sorted(set(processed)) == list(range(10)), "dropped records were not read again"
            await app.consumer.commit()
            assert consumer._committed_offset[partition] == 10


async def test_records_fetched_before_the_first_commit_are_read_after_a_recovery(
    kafka: KafkaSettings, tmp_path: Path, faust_kind: Faust
) -> None:
    """A worker that restarts before anything was committed on a partition fetches its
    records while the tables recover, and skips them because the partition is paused. The
    seek to the committed offsets at the end of the recovery must still bring them back,
    although there is no committed offset to seek to."""
    with faust_kind.fault("records fetched during the recovery were not read"):
        async with _reading_app(kafka, "uncommitted", tmp_path, faust_kind) as (
            app,
            name,
            seen,
            producer,
        ):
            partition = TP(name, 0)
            consumer: Any = app.consumer  # the aiokafka driver's consumer, with its internals
            await _until(lambda: partition in consumer.assignment())
            consumer.pause_partitions({partition})  # what a recovery does to stream partitions
            await _produce(producer, name, 5)
            # The fetch went past the five records and getmany skipped them: the state a restarted
            # worker is in when its recovery ends.
            await consumer._thread.seek_wait({partition: 5})
            consumer._read_offset[partition] = None
            consumer.resume_partitions({partition})
            await consumer.perform_seek()  # the end of the recovery
            await _eventually(lambda: 4 in seen, faust_kind.patience_s)
            assert seen == [0, 1, 2, 3, 4], "records fetched during the recovery were not read"
            await app.consumer.commit()
            assert consumer._committed_offset[partition] == 5


async def test_records_skipped_during_a_rebalance_are_not_committed_and_are_read_again(
    kafka: KafkaSettings, tmp_path: Path, faust_kind: Faust
) -> None:
    """faust's stream iterator skips the records it takes from its buffer while the flow is
    stopped for a rebalance, and acknowledged them as if processed. A commit before the seek to the
    committed offsets (faust commits on a timer) then moved past them, the seek started after
    them, and they were never processed."""
    with faust_kind.fault("skipped records were committed"):
        async with _held_app(kafka, "rebalance", tmp_path, stock_faust=faust_kind.stock) as held:
            app, name, processed, consumer = held.app, held.name, held.processed, held.consumer
            partition = held.partition
            await held.processed_and_committed(5)

            held.go_on.clear()  # the agent holds record 5; records 6-9 wait in the buffer
            await _produce(held.producer, name, 5)
            await _until(lambda: consumer._read_offset.get(partition) == 9)
            app.flow_control.suspend()  # a rebalance starts
            held.go_on.set()
            await _until(lambda: 5 in processed, what=lambda: processed)
            await asyncio.sleep(0.5)  # the stream takes records 6-9 and skips them
            assert processed == [0, 1, 2, 3, 4, 5]
            await app.consumer.commit()  # faust's commit timer runs through a rebalance
            assert consumer._committed_offset[partition] == 5, "skipped records were committed"

            await consumer.perform_seek()  # the end of the rebalance
            app.flow_control.resume()
            await _eventually(lambda: 9 in processed, faust_kind.patience_s)
            assert sorted(set(processed)) == list(range(10)), "skipped records were not read again"
            await asyncio.sleep(0.5)
            await app.consumer.commit()
            assert consumer._committed_offset[partition] == 10


async def test_a_record_processed_while_a_rebalance_empties_the_buffers_is_read_again(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    """A rebalance empties the stream buffers as it starts while the agent still processes a
    record; its acknowledgement, made while the flow is stopped, does not count, and the seek
    to the committed offsets at the end reads it again. Seeking on to the first record emptied
    from the buffer would skip it: it would never count, and every later commit of the
    partition would wait for it."""
    async with _held_app(kafka, "emptied", tmp_path, stock_faust=False) as held:
        app, name, processed, consumer = held.app, held.name, held.processed, held.consumer
        partition = held.partition
        await held.processed_and_committed(2)

        held.go_on.clear()  # the agent holds record 2; records 3-9 wait in the stream's buffer
        await _produce(held.producer, name, 8)
        await _until(lambda: consumer._read_offset.get(partition) == 9)
        # A rebalance starts, as faust's on_partitions_revoked does it.
        assignment = consumer.assignment()
        consumer.stop_flow()
        app.flow_control.suspend()
        consumer.pause_partitions(assignment)
        app.flow_control.clear()  # records 3-9 are dropped
        held.go_on.set()  # the agent finishes record 2 while the flow is stopped
        await _until(lambda: 2 in processed, what=lambda: processed)
        # ... and ends: the seek to the committed offset (2), then the flow resumes.
        await consumer.perform_seek()
        consumer.resume_partitions(assignment)
        app.flow_control.resume()
        consumer.resume_flow()

        await _until(lambda: 9 in processed, what=lambda: processed)
        await asyncio.sleep(0.5)
        assert processed.count(2) == 2, "record 2 was not read again"
        assert sorted(set(processed)) == list(range(10))
        await app.consumer.commit()
        assert consumer._committed_offset[partition] == 10, "the commit waits for record 2"


async def test_a_commit_waits_for_the_record_at_the_committed_offset(
    kafka: KafkaSettings, tmp_path: Path, faust_kind: Faust
) -> None:
    """faust alone commits past an unacknowledged record right at the committed offset (its
    check lets a gap of one at the head through)."""
    app, topic = await inprocess_app(kafka, "head", tmp_path, stock_faust=faust_kind.stock)
    partition = TP(topic.get_topic_name(), 0)
    with faust_kind.fault("committed past record 10"):
        consumer: Any = app.consumer  # built, not started: only its offset bookkeeping is used
        consumer._committed_offset[partition] = 10
        # Record 10 not acknowledged, 11 and 12 acknowledged: nothing may be committed.
        consumer._acked[partition] = [11, 12]
        consumer._acked_index[partition] = {11, 12}
        assert consumer._new_offset(partition) is None, "committed past record 10"
