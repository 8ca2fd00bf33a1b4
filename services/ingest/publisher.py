"""Produces feedback events and reports whether the broker can take them.

A publish returns only once the broker acknowledged the record (``acks="all"``); a broker that is
unreachable, slow or missing its topic raises :class:`BrokerUnavailable` instead. A background
task watches the broker, (re)creates missing topics and (re)starts the producer, so the service
starts and recovers without the broker being there first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError

from services.common.errors import BrokerUnavailable
from services.common.kafka import KafkaSettings, ensure_topics, existing_topics
from services.common.topics import TopicSpec

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Record:
    """One record to produce."""

    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class Publisher:
    """A producer for one topic that knows whether the broker is usable."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: TopicSpec,
        *,
        send_timeout_s: float,
        linger_ms: int = 5,
        check_interval_s: float = 1.0,
    ) -> None:
        self._kafka = kafka
        self._spec = topic
        self.topic = kafka.topic(topic)
        self._send_timeout_s = send_timeout_s
        self._linger_ms = linger_ms
        self._check_interval_s = check_interval_s
        self._producer: AIOKafkaProducer | None = None
        self._ready = asyncio.Event()
        self._recheck = asyncio.Event()
        self._monitor: asyncio.Task[None] | None = None
        self._stopping = False
        self.idempotent: bool | None = None

    @property
    def ready(self) -> bool:
        """True when the broker is reachable, the topic exists and the producer runs."""
        return self._ready.is_set()

    async def start(self) -> None:
        """Begin watching the broker; does not wait for it."""
        if self._monitor is None:
            self._stopping = False
            self._monitor = asyncio.create_task(self._watch(), name=f"publisher:{self.topic}")

    async def wait_ready(self, timeout_s: float) -> bool:
        """Wait until ready; False on timeout."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Stop watching and flush and close the producer."""
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            self._stopping = True
            # asyncio.wait_for (Python 3.11) can swallow a cancellation that arrives as the
            # awaited thing completes; cancel until the task has ended.
            while not monitor.done():
                monitor.cancel()
                await asyncio.wait({monitor}, timeout=1.0)
        await self._close_producer()

    async def publish(self, record: Record) -> None:
        """Produce one record and wait for the broker's acknowledgement."""
        (outcome,) = await self.publish_many([record])
        if outcome is not None:
            raise outcome

    async def publish_many(self, records: Sequence[Record]) -> list[BrokerUnavailable | None]:
        """Produce records together; per record, None when acknowledged or the error."""
        producer = self._producer
        if producer is None or not self.ready:
            error = BrokerUnavailable("the broker is not available")
            return [error for _ in records]
        try:
            # The producer expires unsent batches after its request timeout; wait a little longer
            # so an unacknowledged record is known to have been dropped, not left in a buffer.
            async with asyncio.timeout(self._send_timeout_s + 2.0):
                results = await self._send_all(producer, records)
        except TimeoutError:
            results = [BrokerUnavailable("timed out") for _ in records]
        if any(result is not None for result in results):
            self._mark_unready("produce failed")
        return results

    async def _send_all(
        self, producer: AIOKafkaProducer, records: Sequence[Record]
    ) -> list[BrokerUnavailable | None]:
        futures: list[asyncio.Future[object] | BaseException] = []
        for record in records:
            try:
                futures.append(
                    await producer.send(
                        self.topic, value=record.value, key=record.key, headers=list(record.headers)
                    )
                )
            except KafkaError as exc:
                futures.append(exc)
        return list(await asyncio.gather(*(self._settle(f) for f in futures)))

    @staticmethod
    async def _settle(future: asyncio.Future[object] | BaseException) -> BrokerUnavailable | None:
        if isinstance(future, BaseException):
            return BrokerUnavailable(type(future).__name__)
        try:
            await future
        except (KafkaError, TimeoutError) as exc:
            return BrokerUnavailable(type(exc).__name__)
        return None

    def _mark_unready(self, why: str) -> None:
        if self._ready.is_set():
            log.warning("broker unavailable", topic=self.topic, reason=why)
        self._ready.clear()
        self._recheck.set()

    async def _watch(self) -> None:
        while not self._stopping:
            try:
                await self._check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure means: not ready, try again shortly
                self._mark_unready(f"{type(exc).__name__}: {exc}")
            self._recheck.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._check_interval_s):
                    await self._recheck.wait()

    async def _check(self) -> None:
        timeout = max(1.0, min(self._send_timeout_s, 5.0))
        topics = await existing_topics(self._kafka, timeout_s=timeout)
        if self.topic not in topics:
            if not self._kafka.create_topics:
                self._mark_unready(f"topic {self.topic} does not exist")
                return
            # A new (or restarted, empty) broker: the producer's cached metadata is stale.
            self._ready.clear()
            await self._close_producer()
            await ensure_topics(self._kafka, [self._spec], timeout_s=timeout)
        if self._producer is None:
            self._producer = await self._start_producer()
        if not self._ready.is_set():
            log.info("broker available", topic=self.topic, idempotent=self.idempotent)
        self._ready.set()

    async def _start_producer(self) -> AIOKafkaProducer:
        mode = self._kafka.idempotence
        attempts = [True, False] if mode == "auto" else [mode == "on"]
        if mode == "auto" and self.idempotent is not None:
            attempts = [self.idempotent]
        last_error: Exception | None = None
        for idempotent in attempts:
            producer = AIOKafkaProducer(
                **self._kafka.client_kwargs(),
                acks="all",
                enable_idempotence=idempotent,
                linger_ms=self._linger_ms,
                request_timeout_ms=int(self._send_timeout_s * 1000),
                retry_backoff_ms=100,
            )
            try:
                await asyncio.wait_for(producer.start(), self._send_timeout_s)
            except (KafkaError, TimeoutError) as exc:
                last_error = exc
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(producer.stop(), self._send_timeout_s)
                if isinstance(exc, KafkaConnectionError | TimeoutError):
                    break  # the broker is not there: nothing learnt about idempotence
                if idempotent and mode == "auto":
                    log.warning("broker refuses the idempotent producer; continuing without it")
                continue
            self.idempotent = idempotent
            return producer
        raise BrokerUnavailable(f"producer could not start: {type(last_error).__name__}")

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), self._send_timeout_s)
