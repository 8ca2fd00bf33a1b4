"""The delivery worker: one reader of ``cases.events`` per subscription, so a slow or failing
receiver only ever holds up its own deliveries.

Each subscription keeps its own position on the topic (consumer group
``<group_prefix>.<subscription id>``, partitions assigned directly, offsets committed by hand):

- at least once: a record's offset is committed only after the receiver accepted the event or
  its dead letter reached ``webhooks.dlq``; a stop or crash before that delivers it again
  (receivers drop repeats by ``webhook-id``, the case event id);
- in order per case: a case's events share a partition (keyed by case id), and each partition
  of each subscription is delivered one event at a time, the next only after the previous one
  succeeded or was dead-lettered;
- retried with exponential backoff up to ``max_attempts``, then dead-lettered.

Partitions are delivered concurrently (one event in flight per partition), and each
subscription has its own HTTP connection pool, so a receiver that stalls ties up neither the
others' connections nor their partitions.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from standardwebhooks import Webhook

from services.common.cases import CaseEvent
from services.common.kafka import KafkaSettings, ensure_topics, topic_partitions
from services.common.streams import retriable
from services.common.topics import cases_events, webhooks_dlq
from services.webhooks.delivery import attempt, next_wait_s, signed_headers
from services.webhooks.metrics import WebhookMetrics
from services.webhooks.models import WebhookDeadLetter
from services.webhooks.settings import WebhooksSettings
from services.webhooks.subscriptions import Subscription

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]

#: How often the end offsets are asked for, for the lag figure of paused or idle partitions.
END_OFFSETS_EVERY_S = 5.0


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def group_id(settings: WebhooksSettings, kafka: KafkaSettings, subscription: Subscription) -> str:
    """The consumer group that holds a subscription's position on ``cases.events``."""
    return f"{kafka.topic_prefix}{settings.group_prefix}.{subscription.id}"


class DeadLetters:
    """Writes dead letters to ``webhooks.dlq`` and returns once the broker acknowledged them."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, metrics: WebhookMetrics) -> None:
        self._producer = producer
        self._topic = topic
        self._metrics = metrics

    async def send(self, letter: WebhookDeadLetter, key: bytes | None) -> None:
        """Send until acknowledged; a passing broker failure is retried every second (the
        record's offset is not committed meanwhile, so nothing is lost)."""
        value = letter.model_dump_json().encode()
        headers = [
            ("event_type", letter.event_type.encode()),
            ("schema_version", str(letter.schema_version).encode()),
            ("content-type", b"application/json"),
        ]
        while True:
            try:
                await self._producer.send_and_wait(
                    self._topic, value=value, key=key, headers=headers
                )
            except Exception as exc:
                if not retriable(exc):
                    # Refused for what it is: keep going rather than block the subscription.
                    log.error(
                        "dead letter refused by the broker",
                        subscription=letter.subscription,
                        partition=letter.partition,
                        offset=letter.offset,
                        error_type=type(exc).__name__,
                    )
                    return
                log.warning(
                    "dead letter not acknowledged; sending it again",
                    subscription=letter.subscription,
                    error_type=type(exc).__name__,
                )
                await asyncio.sleep(1.0)
                continue
            self._metrics.dead_letters.labels(letter.subscription, letter.error_type).inc()
            return


class SubscriptionWorker:
    """Delivers ``cases.events`` to one subscription."""

    def __init__(
        self,
        subscription: Subscription,
        *,
        settings: WebhooksSettings,
        kafka: KafkaSettings,
        dead_letters: DeadLetters,
        metrics: WebhookMetrics,
        clock: Clock = utc_now,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.subscription = subscription
        self._settings = settings
        self._kafka = kafka
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._clock = clock
        self._jitter = jitter
        self._signer = Webhook(subscription.secret.get_secret_value())
        self._topic = kafka.topic(cases_events)
        self._consumer: AIOKafkaConsumer | None = None
        self._http: httpx.AsyncClient | None = None
        self._queues: dict[TopicPartition, asyncio.Queue[Any]] = {}
        self._done: dict[TopicPartition, int] = {}  # the next offset to deliver
        self._committed: dict[TopicPartition, int] = {}
        self._ends: dict[TopicPartition, int] = {}
        self._in_delivery_since: dict[TopicPartition, float] = {}  # epoch seconds written

    @property
    def id(self) -> str:
        """The subscription id."""
        return self.subscription.id

    async def start(self) -> None:
        """Connect and take up the subscription's position (a new one starts at ``start_from``
        and records it at once, so a crash before its first delivery skips nothing)."""
        consumer = AIOKafkaConsumer(
            **self._kafka.client_kwargs(),
            group_id=group_id(self._settings, self._kafka, self.subscription),
            enable_auto_commit=False,
            auto_offset_reset=self._settings.start_from,
            fetch_max_wait_ms=self._kafka.worker_fetch_max_wait_ms() or 500,
        )
        await consumer.start()
        try:
            partitions = await topic_partitions(consumer, self._topic)
            consumer.assign(partitions)
            for tp in partitions:
                committed = await consumer.committed(tp)
                if committed is None:
                    if self._settings.start_from == "earliest":
                        await consumer.seek_to_beginning(tp)
                    else:
                        await consumer.seek_to_end(tp)
                    position = await consumer.position(tp)
                    await consumer.commit({tp: position})
                else:
                    consumer.seek(tp, committed)
                    position = committed
                self._done[tp] = self._committed[tp] = position
                self._queues[tp] = asyncio.Queue()
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        self._http = httpx.AsyncClient(
            timeout=self._settings.timeout_s,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=len(partitions) + 1),
        )
        log.info(
            "subscription started",
            subscription=self.id,
            partitions=len(partitions),
            positions={tp.partition: offset for tp, offset in sorted(self._done.items())},
        )

    async def run(self) -> None:
        """Deliver until cancelled; an unexpected error (a bug) ends the run with it."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._fetch())
            group.create_task(self._commit_regularly())
            for tp in self._queues:
                group.create_task(self._deliver_partition(tp))

    async def close(self) -> None:
        """Commit what was delivered and disconnect."""
        if self._consumer is not None:
            try:
                await self._commit()
            finally:
                await self._consumer.stop()
                self._consumer = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def progress(self) -> tuple[int, float]:
        """Records not yet delivered, and seconds the event in delivery longest has waited."""
        consumer = self._consumer
        behind = 0
        for tp, done in self._done.items():
            high = consumer.highwater(tp) if consumer is not None else None
            end = max(self._ends.get(tp, 0), high or 0)
            behind += max(0, end - done)
        now = time.time()
        waited = max((now - since for since in self._in_delivery_since.values()), default=0.0)
        return behind, max(0.0, waited)

    async def _fetch(self) -> None:
        """Read ahead into one queue per partition; pause a partition whose queue is full."""
        consumer = self._require_consumer()
        size = self._settings.queue_size
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=size)
            for tp, records in batch.items():
                queue = self._queues[tp]
                for record in records:
                    queue.put_nowait(record)
                if queue.qsize() >= size:
                    consumer.pause(tp)
            for tp in consumer.paused():
                if self._queues[tp].qsize() <= size // 2:
                    consumer.resume(tp)

    async def _commit_regularly(self) -> None:
        last_ends = 0.0
        while True:
            await asyncio.sleep(self._settings.commit_interval_s)
            await self._commit()
            if time.monotonic() - last_ends >= END_OFFSETS_EVERY_S:
                last_ends = time.monotonic()
                try:
                    ends = await self._require_consumer().end_offsets(list(self._done))
                except KafkaError:
                    continue
                self._ends.update({tp: int(offset) for tp, offset in ends.items()})

    async def _commit(self) -> None:
        consumer = self._consumer
        changed = {tp: off for tp, off in self._done.items() if self._committed.get(tp) != off}
        if consumer is None or not changed:
            return
        try:
            await consumer.commit(changed)
        except KafkaError as exc:
            # Committed later; a crash before then delivers these events again (at least once).
            log.warning("offsets not committed", subscription=self.id, error=type(exc).__name__)
            return
        self._committed.update(changed)

    async def _deliver_partition(self, tp: TopicPartition) -> None:
        queue = self._queues[tp]
        while True:
            record = await queue.get()
            written = record.timestamp / 1000 if record.timestamp and record.timestamp > 0 else None
            self._in_delivery_since[tp] = written if written is not None else time.time()
            try:
                await self._handle(record)
            finally:
                self._in_delivery_since.pop(tp, None)
            self._done[tp] = record.offset + 1

    async def _handle(self, record: Any) -> None:
        value: bytes = record.value or b""
        try:
            event = CaseEvent.model_validate_json(value)
        except ValidationError as exc:
            # Locations and error kinds only: the values may be customer text.
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'record'}: {err['type']}"
                for err in exc.errors(include_url=False, include_input=False)[:5]
            )
            log.error(
                "unreadable record on cases.events; dead-lettered",
                subscription=self.id,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
            )
            await self._dead_letters.send(
                WebhookDeadLetter.for_record(
                    subscription=self.id,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    value=value,
                    attempts=0,
                    reason=f"not a case event: {problems}",
                    error_type="unreadable",
                    now=self._clock(),
                ),
                record.key,
            )
            return
        if self.subscription.wants(event):
            await self._deliver(record, event, value)

    async def _deliver(self, record: Any, event: CaseEvent, body: bytes) -> None:
        http = self._require_http()
        sid = self.id
        webhook_id = str(event.event_id)
        settings = self._settings
        attempts = 0
        while True:
            attempts += 1
            now = self._clock()
            headers = signed_headers(self._signer, webhook_id=webhook_id, body=body, now=now)
            result = await attempt(http, self.subscription.url, body=body, headers=headers, now=now)
            self._metrics.duration.labels(sid).observe(result.duration_s)
            if result.ok:
                self._metrics.deliveries.labels(sid).inc()
                return
            error_type = result.error_type or "request"
            self._metrics.failures.labels(sid, error_type).inc()
            context = {
                "subscription": sid,
                "event_id": webhook_id,
                "case_id": str(event.case_id),
                "type": event.type.value,
                "attempt": attempts,
                "status": result.status,
                "error_type": error_type,
            }
            if attempts >= settings.max_attempts:
                log.warning(
                    "webhook not accepted within the retry budget; dead-lettered", **context
                )
                await self._dead_letters.send(
                    WebhookDeadLetter.for_record(
                        subscription=sid,
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                        value=body,
                        attempts=attempts,
                        reason=result.reason,
                        error_type=error_type,
                        now=self._clock(),
                        webhook_id=webhook_id,
                        case_id=event.case_id,
                        case_event_type=event.type,
                        last_status=result.status,
                    ),
                    record.key,
                )
                return
            wait = next_wait_s(
                attempts,
                retry_after=result.retry_after_s,
                initial_s=settings.backoff_initial_s,
                max_s=settings.backoff_max_s,
                jitter=self._jitter(),
            )
            log.info("webhook delivery failed; retrying", wait_s=round(wait, 3), **context)
            self._metrics.retries.labels(sid).inc()
            await asyncio.sleep(wait)

    def _require_consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("the subscription worker is not started")
        return self._consumer

    def _require_http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise RuntimeError("the subscription worker is not started")
        return self._http


class WebhookService:
    """Every subscription's worker, the dead-letter producer, and readiness."""

    def __init__(
        self,
        settings: WebhooksSettings,
        kafka: KafkaSettings,
        subscriptions: Sequence[Subscription],
        *,
        metrics: WebhookMetrics | None = None,
        clock: Clock = utc_now,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.kafka = kafka
        self.subscriptions = tuple(subscriptions)
        self.metrics = metrics or WebhookMetrics()
        self.metrics.watch(self.progress)
        self.ready = False
        self._clock = clock
        self._jitter = jitter
        self._producer: AIOKafkaProducer | None = None
        self._workers: list[SubscriptionWorker] = []

    def progress(self) -> Mapping[str, tuple[int, float]]:
        """Subscription id -> (records behind, seconds the oldest event in delivery waited)."""
        return {worker.id: worker.progress() for worker in self._workers}

    async def start(self) -> None:
        """Create the topics when allowed, connect, and take up every subscription."""
        if self.kafka.create_topics:
            await ensure_topics(self.kafka, [cases_events, webhooks_dlq])
        producer = AIOKafkaProducer(**self.kafka.client_kwargs(), acks="all")
        await producer.start()
        self._producer = producer
        dead_letters = DeadLetters(producer, self.kafka.topic(webhooks_dlq), self.metrics)
        workers = [
            SubscriptionWorker(
                subscription,
                settings=self.settings,
                kafka=self.kafka,
                dead_letters=dead_letters,
                metrics=self.metrics,
                clock=self._clock,
                jitter=self._jitter,
            )
            for subscription in self.subscriptions
        ]
        self._workers = workers
        await asyncio.gather(*(worker.start() for worker in workers))
        self.ready = True
        log.info("webhook worker ready", subscriptions=[w.id for w in workers])

    async def start_when_possible(self, *, retry_s: float = 2.0) -> None:
        """``start``, trying again while the broker cannot be reached (it may come up later)."""
        while True:
            try:
                await self.start()
                return
            except (KafkaError, OSError, TimeoutError) as exc:
                log.warning("cannot start yet; trying again", error=f"{type(exc).__name__}: {exc}")
                await self.stop()
                await asyncio.sleep(retry_s)

    async def run(self) -> None:
        """Deliver until cancelled (start first)."""
        if not self._workers:
            await asyncio.Event().wait()  # nothing subscribed: idle, still healthy
        async with asyncio.TaskGroup() as group:
            for worker in self._workers:
                group.create_task(worker.run())

    async def stop(self) -> None:
        """Commit what was delivered and disconnect everything."""
        self.ready = False
        workers, self._workers = self._workers, []
        for worker in workers:
            try:
                await worker.close()
            except Exception as exc:
                log.warning(
                    "subscription did not close cleanly", subscription=worker.id, error=repr(exc)
                )
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
