"""The trends worker's Kafka side: reads ``feedback.classified``, feeds the state, and sends
surges to ``trends.surges`` and emerging clusters to ``trends.emerging``.

Every worker reads every partition (no consumer group) from the start of the topic's
retention and rebuilds its state from it: the state is a function of the topic, so a restart
loses nothing and several workers are replicas that give the same answers behind a load
balancer. Their events carry stable ids (per surge and state, per cluster and report), so the
copies two replicas send are repeats a reader drops. Events found while replaying history
older than ``emit_horizon_s`` are kept for the API and not sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from services.common.clock import utc_now
from services.common.kafka import KafkaSettings, ensure_topics, topic_partitions
from services.common.messages import FeedbackClassified
from services.common.topics import feedback_classified, trends_emerging, trends_surges
from services.common.trends import EmergingIssue, RepresentativeMessage, SurgeEvent
from services.trends.clusters import Emerging
from services.trends.metrics import TrendsMetrics
from services.trends.observation import observe
from services.trends.settings import TrendsSettings
from services.trends.state import Changes, TrendsState
from services.trends.surges import Surge

log = structlog.get_logger(__name__)

EVENT_NAMESPACE = uuid.UUID("a3f4c1d2-7b8e-4f60-9d2a-1c5e8b7f3a90")


def surge_event(surge: Surge) -> SurgeEvent:
    """The message of a surge's start or end."""
    state = "ended" if surge.ended_at is not None else "started"
    return SurgeEvent(
        event_id=uuid.uuid5(EVENT_NAMESPACE, f"surge\x00{surge.surge_id}\x00{state}"),
        surge_id=uuid.UUID(surge.surge_id),
        state=state,
        category=surge.category,
        channel=surge.channel,
        window_start=surge.window_start,
        detected_at=surge.detected_at,
        ended_at=surge.ended_at,
        count=surge.count,
        expected=surge.expected,
        p_value=min(1.0, surge.p_value),
        baseline=surge.baseline,
        peak_count=surge.peak_count,
    )


def emerging_event_id(cluster_id: str, number: int) -> uuid.UUID:
    """The id of a cluster's ``number``th report, the same on every replica (the first keeps
    the id of a cluster alone, as before reports were numbered)."""
    name = f"emerging\x00{cluster_id}" + (f"\x00{number}" if number > 1 else "")
    return uuid.uuid5(EVENT_NAMESPACE, name)


def emerging_issue(
    version: str,
    report: Emerging,
    detected_at: datetime,
    *,
    number: int = 1,
    previous_size: int | None = None,
) -> EmergingIssue:
    """The message of a cluster first found emerging (``number`` 1) or of a growth update."""
    return EmergingIssue(
        event_id=emerging_event_id(report.cluster_id, number),
        cluster_id=uuid.UUID(report.cluster_id),
        report=number,
        previous_size=previous_size,
        model_version=version,
        size=report.size,
        recent=report.recent,
        expected_recent=report.expected_recent,
        growth=report.growth,
        first_seen=report.first_seen,
        last_seen=report.last_seen,
        detected_at=detected_at,
        top_terms=report.top_terms,
        categories=report.categories,
        channels=report.channels,
        representatives=tuple(
            RepresentativeMessage(
                event_id=uuid.UUID(r.event_id),
                excerpt=r.excerpt,
                at=r.at,
                category=r.category,
                channel=r.channel,
            )
            for r in report.representatives
        ),
        member_ids=tuple(uuid.UUID(m) for m in report.member_ids),
    )


class TrendsService:
    """Reads the classified messages into the trends state and sends what it raises."""

    def __init__(
        self,
        settings: TrendsSettings,
        kafka: KafkaSettings,
        *,
        metrics: TrendsMetrics | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.kafka = kafka
        self.metrics = metrics or TrendsMetrics()
        self.state = TrendsState(settings.surge_rules(), settings.cluster_rules())
        self.ready = False
        self._clock = clock
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._catch_up: dict[TopicPartition, int] = {}
        self.lock = asyncio.Lock()  # the API reads the state between batches

    async def start(self) -> None:
        """Create the topics that are missing, connect, and take every partition of
        feedback.classified from its beginning."""
        await ensure_topics(self.kafka, [feedback_classified, trends_surges, trends_emerging])
        topic = self.kafka.topic(feedback_classified)
        consumer = AIOKafkaConsumer(
            **self.kafka.client_kwargs(),
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=self.kafka.worker_fetch_max_wait_ms() or 500,
        )
        await consumer.start()
        try:
            partitions = await topic_partitions(consumer, topic)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            self._catch_up = {tp: int(end) for tp, end in ends.items() if int(end) > 0}
            producer = AIOKafkaProducer(**self.kafka.client_kwargs(), acks="all")
            await producer.start()
        except BaseException:
            await consumer.stop()
            raise
        self._consumer, self._producer = consumer, producer
        self.ready = not self._catch_up
        log.info("trends worker started", partitions=len(partitions), replaying=not self.ready)

    async def stop(self) -> None:
        """Disconnect."""
        for client in (self._consumer, self._producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        self._consumer = self._producer = None

    async def run(self) -> None:
        """Read and judge until cancelled."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("the trends worker is not started")
        interval = self.settings.evaluate_interval_s
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + interval
        while True:
            batches = await consumer.getmany(timeout_ms=int(min(interval, 0.5) * 1000))
            for tp, records in batches.items():
                await self._apply(records)
                if tp in self._catch_up and records[-1].offset + 1 >= self._catch_up[tp]:
                    del self._catch_up[tp]
            if not self.ready and not self._catch_up:
                self.ready = True
                log.info("trends worker caught up", messages=self.state.observed)
            if self.ready and loop.time() >= next_tick:
                next_tick = loop.time() + interval
                async with self.lock:
                    changes = self.state.advance(self._clock())
                await self._send(changes)
                self._observe_state()

    async def _apply(self, records: list) -> None:  # type: ignore[type-arg]
        horizon = self._clock() - timedelta(days=self.settings.replay_days)
        changes = Changes()
        async with self.lock:
            for record in records:
                try:
                    message = FeedbackClassified.model_validate_json(record.value or b"")
                except ValidationError:
                    self.metrics.unreadable.inc()
                    log.warning(
                        "unreadable record skipped",
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                    )
                    continue
                observation = observe(message)
                if observation.at < horizon:
                    continue
                repeats = self.state.repeats
                step = self.state.add(observation)
                changes.surges.extend(step.surges)
                changes.emerging.extend(step.emerging)
                changes.updates.extend(step.updates)
                if self.state.repeats == repeats:
                    self.metrics.messages.labels(
                        observation.category, observation.channel, observation.sentiment
                    ).inc()
                    self.metrics.difficult.labels(observation.difficult).inc()
        await self._send(changes)
        self._observe_state()

    def _observe_state(self) -> None:
        self.metrics.active_surges.set(len(self.state.surges.active()))
        self.metrics.emerging_now.set(len(self.state.emerging()))
        if self.state.clock is not None:
            self.metrics.event_time.set(self.state.clock.timestamp())

    async def _send(self, changes: Changes) -> None:
        horizon = self._clock() - timedelta(seconds=self.settings.emit_horizon_s)
        for surge in changes.surges:
            when = surge.ended_at or surge.detected_at
            if when < horizon:
                continue  # found again while replaying: neither sent nor counted again
            if surge.ended_at is None:
                self.metrics.surges.labels(surge.category, surge.channel).inc()
            log.info(
                "surge " + ("ended" if surge.ended_at else "started"),
                category=surge.category,
                channel=surge.channel,
                count=surge.count,
                expected=surge.expected,
            )
            event = surge_event(surge)
            await self._produce(
                trends_surges.name,
                f"{surge.category}:{surge.channel}".encode(),
                event.model_dump_json().encode(),
            )
        detected = self.state.clock or self._clock()
        if detected < horizon:
            return  # found again while replaying: neither sent nor counted again
        for version, report in changes.emerging:
            self.metrics.emerging.inc()
            log.info(
                "emerging cluster",
                cluster_id=report.cluster_id,
                size=report.size,
                recent=report.recent,
            )
            await self._send_issue(emerging_issue(version, report, detected))
        for update in changes.updates:
            self.metrics.emerging_updates.inc()
            log.info(
                "emerging cluster grew",
                cluster_id=update.report.cluster_id,
                report=update.number,
                size=update.report.size,
                previous_size=update.previous_size,
            )
            issue = emerging_issue(
                update.version,
                update.report,
                detected,
                number=update.number,
                previous_size=update.previous_size,
            )
            await self._send_issue(issue)

    async def _send_issue(self, issue: EmergingIssue) -> None:
        # Keyed by the cluster: its first report and its updates stay in order.
        await self._produce(
            trends_emerging.name, str(issue.cluster_id).encode(), issue.model_dump_json().encode()
        )

    async def _produce(self, name: str, key: bytes, value: bytes) -> None:
        producer = self._producer
        if producer is None:
            return
        topic = self.kafka.topic(trends_surges if name == trends_surges.name else trends_emerging)
        try:
            await producer.send_and_wait(topic, value=value, key=key)
        except KafkaError as exc:
            self.metrics.sends_failed.labels(name).inc()
            log.error("trends event refused by the broker", topic=topic, error=type(exc).__name__)
