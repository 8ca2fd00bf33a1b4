"""What the faust workers share: topics declared as raw bytes (the services parse and write
their own JSON models, so a record that does not parse reaches the agent and its dead-letter
topic instead of failing inside faust)."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Sequence
from typing import Any

import structlog
from aiokafka.errors import KafkaError, KafkaTimeoutError

from services.common.kafka import KafkaSettings
from services.common.messages import DeadLetter, dead_letter_key
from services.common.topics import TopicSpec

log = structlog.get_logger(__name__)


def raw_topic(app: Any, kafka: KafkaSettings, spec: TopicSpec) -> Any:
    """A faust topic of this deployment whose keys and values are bytes as on the wire."""
    return app.topic(
        kafka.topic(spec),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=spec.partitions,
    )


def retriable(exc: BaseException) -> bool:
    """Whether a failed delivery may succeed if sent again: the broker away or slow, a leader
    moving. A record the broker refuses for what it is (too large, say) never will."""
    if isinstance(exc, KafkaTimeoutError | ConnectionError | asyncio.TimeoutError):
        return True
    return isinstance(exc, KafkaError) and bool(exc.retriable)


async def deliveries_settled(
    futures: Sequence[Any],
) -> tuple[list[int], dict[int, Exception]]:
    """Wait for deliveries; the positions of those to send again (a passing failure), and the
    errors of those the broker refused outright. A cancellation is raised (the worker stops)."""
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    again: list[int] = []
    refused: dict[int, Exception] = {}
    for n, outcome in enumerate(outcomes):
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome
        if isinstance(outcome, Exception):
            if retriable(outcome):
                again.append(n)
            else:
                refused[n] = outcome
    return again, refused


def _partition_of(key_partition: Any, name: str | None, key: bytes) -> Hashable | None:
    try:
        said: Hashable | None = key_partition(name, key)
    except Exception:  # the producer cannot say (not started, no metadata yet for the topic)
        return None
    return said


def partition_chains(
    topic: Any, keys: Sequence[bytes | None], partition: int | None = None
) -> list[list[int]]:
    """The positions of records with these keys, in one chain per partition they go to (in
    order within a chain), for the producer to take one partition's records one after another.

    The partition is ``partition`` when given, else the producer's for the key (faust's public
    ``producer.key_partition``). A record without a key (the partitioner picks any partition)
    or one whose partition the topic or producer cannot say (a stand-in topic, a producer not
    started, a topic whose metadata has not arrived) is chained with its key alone: the same
    key always goes to the same partition, so each key's records stay in order either way.
    """
    if partition is not None:
        return [list(range(len(keys)))] if keys else []
    try:
        key_partition: Any = topic.app.producer.key_partition
        name: str | None = topic.get_topic_name()
    except (AttributeError, TypeError):  # not a faust topic of one name: chains per key
        key_partition, name = None, None
    destinations: dict[bytes | None, Hashable] = {}
    chains: dict[Hashable, list[int]] = {}
    for n, key in enumerate(keys):
        destination = destinations.get(key)
        if destination is None:
            destination = ("key", key)
            if key is not None and key_partition is not None:
                said = _partition_of(key_partition, name, key)
                if said is not None:
                    destination = ("partition", said)
            destinations[key] = destination
        chains.setdefault(destination, []).append(n)
    return list(chains.values())


async def send_acknowledged(
    topic: Any,
    records: Sequence[tuple[bytes | None, bytes]],
    *,
    retry_s: float = 1.0,
    partition: int | None = None,
) -> list[Exception | None]:
    """Send the records and return only once the broker has acknowledged or refused each one:
    for each record, None, or the error the broker refused it with (too large, say).

    ``partition`` names the partition for every record (the producer's partitioner otherwise).
    A worker acknowledges its input only after this returns, so its committed offset never
    passes a record whose output is still in a producer buffer (a killed worker would lose it).
    A record whose delivery failed for a passing reason (the broker away longer than the
    producer retries) is sent again after ``retry_s`` until it is acknowledged; readers skip
    repeats by id.
    """
    results: list[Exception | None] = [None] * len(records)
    pending = list(range(len(records)))
    while pending:
        failed: list[int] = []

        async def hand_over(chain: list[int], failed: list[int] = failed) -> list[tuple[int, Any]]:
            handed: list[tuple[int, Any]] = []
            for n in chain:
                try:
                    handed.append(
                        (
                            n,
                            await topic.send(
                                key=records[n][0], value=records[n][1], partition=partition
                            ),
                        )
                    )
                except Exception as exc:  # refused as it was handed over: too large, say
                    if retriable(exc):
                        failed.append(n)
                    else:
                        results[n] = exc
            return handed

        # The producer takes a record for a partition only once that partition's previous
        # batch has room or has left, so one partition's records are handed over one after
        # another (one waiter per partition, not one per key all woken by each batch that
        # leaves), and the partitions side by side: one partition's wait holds up no other.
        chains = partition_chains(topic, [records[n][0] for n in pending], partition)
        handed = [
            pair
            for chain in await asyncio.gather(
                *(hand_over([pending[i] for i in chain]) for chain in chains)
            )
            for pair in chain
        ]
        sent = [n for n, _ in handed]
        again, refused = await deliveries_settled([future for _, future in handed])
        for position, error in refused.items():
            results[sent[position]] = error
        failed = sorted(failed + [sent[position] for position in again])
        if failed:
            log.warning(
                "records not acknowledged by the broker; sending them again",
                topic=topic.get_topic_name(),
                count=len(failed),
            )
            await asyncio.sleep(retry_s)
        pending = failed
    return results


async def send_dead_letter(topic: Any, letter: DeadLetter, key: bytes | None) -> bool:
    """Send a dead letter (with the record's key, cut to its carried length) and wait for the
    broker; False, and an error logged, when the broker refuses it."""
    record = (dead_letter_key(key), letter.model_dump_json().encode())
    (refused,) = await send_acknowledged(topic, [record])
    if refused is None:
        return True
    log.error(
        "dead letter refused by the broker",
        topic=letter.source_topic,
        partition=letter.partition,
        offset=letter.offset,
        error_type=type(refused).__name__,
    )
    return False
