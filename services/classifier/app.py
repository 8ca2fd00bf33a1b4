"""Builds the classifier worker: a faust app that tags ``feedback.received`` in micro-batches.

Nothing runs at import. ``create_app`` loads nothing itself: the caller passes the model, so the
model loads once per worker, before the first batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import faust
import structlog
from faust.types import EventT
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.classifier import history
from services.classifier.metrics import ClassifierMetrics
from services.classifier.model import TAGS, Prediction, TriageModel
from services.classifier.pipeline import (
    RawRecord,
    assemble,
    dead_letter,
    decode,
    facts_of,
    history_entry,
)
from services.classifier.settings import ClassifierSettings
from services.common.clock import utc_now
from services.common.faust_app import TriageApp
from services.common.kafka import KafkaSettings
from services.common.lag import ConsumerLagCollector
from services.common.messages import DeadLetter, Facts, FeedbackReceived
from services.common.streams import raw_topic, send_acknowledged, send_dead_letter
from services.common.tables import acknowledged_table
from services.common.topics import feedback_classified, feedback_received, feedback_received_dlq

log = structlog.get_logger(__name__)
PROMETHEUS_MEDIA_TYPE = CONTENT_TYPE_LATEST.split(";", 1)[0]


@dataclass
class WorkerState:
    """What the health views report."""

    started: bool = False
    batches: int = 0
    last_batch_at: float | None = None
    errors: list[str] = field(default_factory=list)


def create_app(
    settings: ClassifierSettings,
    kafka: KafkaSettings,
    model: TriageModel,
    *,
    metrics: ClassifierMetrics | None = None,
) -> faust.App:
    """The classifier's faust app, with its topics, history table, agent and web views."""
    metrics = metrics or ClassifierMetrics()
    metrics.model_info.info(
        {
            "version": model.version,
            "base_encoder": model.metadata.base_encoder,
            "backend": model.backend,
        }
    )
    app = TriageApp(
        settings.app_id,
        **kafka.faust_options(),
        store=settings.store,
        datadir=str(settings.data_dir),
        web_enabled=True,
        web_host=settings.host,
        web_port=settings.port,
        web_bind=settings.host,
        # Only our own views (/metrics, /healthz, /readyz): faust's table views serve the
        # customer-history table (personal data) without authentication, and its router,
        # statistics and graph views the cluster's layout. No table_route is used.
        web_tables_enabled=False,
        web_router_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
        consumer_auto_offset_reset="earliest",
        topic_partitions=feedback_received.partitions,
        autodiscover=False,
    )
    source = raw_topic(app, kafka, feedback_received)
    output = raw_topic(app, kafka, feedback_classified)
    dead_letters = raw_topic(app, kafka, feedback_received_dlq)
    # Keyed by customer id like the source topic, and written to the changelog partition of
    # the message being processed, so a customer's history moves with its messages.
    customers = acknowledged_table(
        app,
        "customer-history",
        default=list,
        partitions=feedback_received.partitions,
        key_type=str,
        help="Recent messages per customer: event ids and tags.",
    )
    state = WorkerState()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    def past_of(customer_id: str) -> list[history.Entry]:
        return history.parse_entries(customers.get(customer_id))

    def remember(partition: int, customer_id: str) -> None:
        # A batch mixes partitions, so the changelog partition is given explicitly: the
        # partition of the message, which faust co-assigns with the table's partition.
        customers.send_changelog(partition, customer_id, customers.data[customer_id])

    async def send_dead(letter: DeadLetter, key: bytes | None) -> None:
        if not await send_dead_letter(dead_letters, letter, key):
            return
        metrics.dead_letters.labels(letter.error_type).inc()
        log.warning(
            "record sent to dead letters",
            topic=letter.source_topic,
            partition=letter.partition,
            offset=letter.offset,
            error_type=letter.error_type,
        )

    async def send_failed(record: RawRecord, exc: Exception, what: str) -> None:
        reason = f"{what}: {type(exc).__name__}: {exc}"
        letter = dead_letter(record, reason=reason, error_type=type(exc).__name__, now=utc_now())
        await send_dead(letter, record.key)

    def run_model(texts: list[str]) -> list[Prediction]:
        started = time.perf_counter()
        predictions = model.predict(texts, batch_size=settings.batch_size)
        metrics.model_seconds.observe(time.perf_counter() - started)
        return predictions

    def start_predict(texts: Sequence[str]) -> asyncio.Future[list[Prediction]]:
        """The model's run over the texts, already started in its thread."""
        return asyncio.get_running_loop().run_in_executor(executor, run_model, list(texts))

    async def predict_each(
        pending: list[tuple[RawRecord, FeedbackReceived]],
    ) -> list[tuple[FeedbackReceived, Prediction]]:
        """After a batch failed: tag one by one, dead-lettering what still fails."""
        done = []
        for record, event in pending:
            try:
                (prediction,) = await start_predict([event.text])
            except Exception as exc:  # the model failed on this text: dead letter, go on
                await send_failed(record, exc, "model failed")
                continue
            done.append((event, prediction))
        return done

    def emit(
        event: FeedbackReceived,
        prediction: Prediction,
        record: RawRecord,
        now: datetime,
        facts: Facts | None,
    ) -> tuple[bytes, bytes]:
        """The classified message's record (key, value). The customer's history takes the
        message at once (a later message of the batch sees it), but its changelog is written
        by the caller only once the broker has acknowledged the record."""
        customer = event.customer.id
        past = past_of(customer)
        classified = assemble(
            event,
            prediction,
            facts=facts,
            past=past,
            model_version=model.version,
            window_days=settings.history_window_days,
            repeat_threshold=settings.repeat_threshold,
            now=now,
        )
        customers.data[customer] = history.remember(
            past,
            history_entry(event, prediction, now=now),
            now=now,
            window_days=settings.history_window_days,
            max_entries=settings.history_max_entries,
        )
        _observe(metrics, classified.needs_review, prediction)
        metrics.latency.observe(max(0.0, (now - event.received_at).total_seconds()))
        log.info(
            "message classified",
            event_id=str(event.event_id),
            category=prediction.category.label,
            needs_review=classified.needs_review,
            partition=record.partition,
            offset=record.offset,
        )
        return customer.encode(), classified.model_dump_json().encode()

    async def process(events: Sequence[EventT[bytes]]) -> None:
        records = [_raw(event) for event in events]
        decoded = decode(
            records,
            already_seen=lambda e: history.seen(past_of(e.customer.id), str(e.event_id)),
            now=utc_now(),
        )
        for record, letter in decoded.dead:
            await send_dead(letter, record.key)
        if decoded.duplicates:
            metrics.duplicates.inc(len(decoded.duplicates))
            log.info(
                "repeated events skipped",
                count=len(decoded.duplicates),
                event_ids=[str(event.event_id) for event in decoded.duplicates],
            )
        if not decoded.events:
            return
        metrics.batch_size.observe(len(decoded.events))
        pending = [event for _, event in decoded.events]
        running = start_predict([event.text for event in pending])
        # The facts need no model: they are read here while the model runs in its thread,
        # which leaves the worker's own share of a batch to assembling and sending.
        facts = facts_of(pending)
        try:
            predictions = await running
            tagged = list(zip(pending, predictions, strict=True))
        except Exception as exc:  # a batch failure must not stop the stream
            log.exception("model failed on a batch; tagging one by one", error=type(exc).__name__)
            tagged = await predict_each(decoded.events)
        finished = utc_now()
        record_of = {str(event.event_id): record for record, event in decoded.events}
        done: list[tuple[FeedbackReceived, RawRecord]] = []
        outputs: list[tuple[bytes | None, bytes]] = []
        for event, prediction in tagged:
            record = record_of[str(event.event_id)]
            try:
                outputs.append(
                    emit(event, prediction, record, finished, facts.get(str(event.event_id)))
                )
            except Exception as exc:  # this message fails alone; the batch goes on
                log.exception("message failed", event_id=str(event.event_id))
                await send_failed(record, exc, "classification failed")
                continue
            done.append((event, record))
        # The history's changelog marks a message done, and a restarted worker skips what it
        # marks: write it only after the broker acknowledged the classified message, or a worker
        # killed in between would lose the message instead of classifying it again. The batch's
        # input is acknowledged only after this returns.
        refusals = await send_acknowledged(output, outputs)
        written: set[str] = set()
        for (event, record), refused in zip(done, refusals, strict=True):
            if refused is not None:
                await send_failed(record, refused, "classified message refused by the broker")
            elif event.customer.id not in written:
                written.add(event.customer.id)
                remember(record.partition, event.customer.id)
        await customers.acknowledged()
        state.batches += 1
        state.last_batch_at = time.time()

    @app.agent(source, name="classify-feedback")
    async def classify_feedback(stream: faust.StreamT[bytes]) -> None:
        assert isinstance(stream, faust.Stream)
        batches = stream.take_events(settings.batch_size, within=settings.batch_wait_s)
        async for events in batches:
            try:
                await process(events)
            except Exception as exc:  # a bug must not stop the stream or lose the batch
                log.exception(
                    "batch failed; its records go to the dead-letter topic",
                    partitions=sorted({e.message.partition for e in events}),
                    first_offset=min(e.message.offset for e in events),
                )
                for event in events:
                    await send_failed(_raw(event), exc, "batch failed")

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        # aiohttp takes the charset apart from the media type.
        return web.bytes(generate_latest(metrics.registry), content_type=PROMETHEUS_MEDIA_TYPE)

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ready = state.started and not app.rebalancing
        body = {"status": "ok" if ready else "unavailable", "model_version": model.version}
        return web.json(body, status=200 if ready else 503)

    @app.task  # type: ignore[untyped-decorator]
    async def mark_started() -> None:
        state.started = True
        log.info("classifier started", model_version=model.version, app_id=settings.app_id)

    metrics.registry.register(ConsumerLagCollector(app))
    app.triage_state = state  # type: ignore[attr-defined]
    app.triage_metrics = metrics  # type: ignore[attr-defined]
    return app


def _raw(event: EventT[bytes]) -> RawRecord:
    message = event.message
    return RawRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
    )


def _observe(metrics: ClassifierMetrics, needs_review: bool, prediction: Prediction) -> None:
    metrics.classified.inc()
    for tag in TAGS:
        result = getattr(prediction, tag)
        metrics.messages.labels(tag, result.label).inc()
        if result.needs_review:
            metrics.needs_review.labels(tag).inc()
    if needs_review:
        metrics.review_messages.inc()
