"""What the faust workers share: topics declared as raw bytes (the services parse and write
their own JSON models, so a record that does not parse reaches the agent and its dead-letter
topic instead of failing inside faust)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
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


async def send_acknowledged(
    topic: Any, records: Sequence[tuple[bytes | None, bytes]], *, retry_s: float = 1.0
) -> list[Exception | None]:
    """Send the records and return only once the broker has acknowledged or refused each one:
    for each record, None, or the error the broker refused it with (too large, say).

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
                    handed.append((n, await topic.send(key=records[n][0], value=records[n][1])))
                except Exception as exc:  # refused as it was handed over: too large, say
                    if retriable(exc):
                        failed.append(n)
                    else:
                        results[n] = exc
            return handed

        # The producer takes a record for a partition only once that partition's previous
        # batch has left, so records are handed over one key after another (in order within
        # a key) but the keys side by side: one partition's wait holds up no other partition.
        chains: dict[bytes | None, list[int]] = {}
        for n in pending:
            chains.setdefault(records[n][0], []).append(n)
        handed = [
            pair
            for chain in await asyncio.gather(*(hand_over(c) for c in chains.values()))
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
