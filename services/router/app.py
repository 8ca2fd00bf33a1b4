"""Builds the router worker: a faust app that owns cases and routing, plus the agent API.

Three streams meet in the inbox topic, which one agent applies in order:

* ``forward_feedback`` reads ``feedback.classified`` and forwards each message to the inbox;
* the agent API sends agents' commands to the inbox and waits for their results;
* a faust timer sends a tick when an offer expires or a service-level deadline is due.

The inbox has a partition per floor of the roster (one without floors; see
:mod:`services.router.floors`), and the worker keeps a :class:`RouterRuntime` (engine, clock,
live streams) per floor, routing the floors whose partitions it holds; its agent API serves
each caller with their floor (:mod:`services.router.dispatch`).

``apply_inbox`` takes the inbox records ready (a batch) and has the :class:`InboxApplier` of
each record's floor apply them to that floor's :class:`Engine` in order, publish their case
events on ``cases.events`` (and what belongs to another floor on its inbox partition), store
the changed cases and agents in changelog-backed tables, then acknowledge them. After a
restart or rebalance each engine is rebuilt from the tables; records replayed since the last
commit are recognised (event, command and clock ids) and change nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import faust
import structlog
from faust.types import EventT
from pydantic import ValidationError

from services.common.cases import CaseEvent, Presence
from services.common.clock import utc_now as _now
from services.common.faust_app import TriageApp
from services.common.kafka import KafkaSettings
from services.common.lag import ConsumerLagCollector
from services.common.messages import Category, DeadLetter, FeedbackClassified
from services.common.serving import embedded_server
from services.common.streams import raw_topic, send_acknowledged, send_dead_letter
from services.common.tables import AcknowledgedTable, acknowledged_table
from services.common.topics import (
    agents_events,
    cases_events,
    feedback_classified,
    feedback_classified_dlq,
    feedback_corrections,
    router_inbox,
    router_inbox_dlq,
)
from services.router import sla
from services.router.access import receives
from services.router.api import create_api, metrics_payload
from services.router.applier import INBOX as INBOX  # the inbox record model, read elsewhere too
from services.router.applier import (
    Applied,
    InboxApplier,
    JournalPart,
    Produced,
    first_error,
    stored_state,
)
from services.router.book import MOVED_PREFIX, Moved
from services.router.clock import TickClock
from services.router.commands import ClassifiedIn, Command, CommandResult, Disconnected, Tick
from services.router.dispatch import FloorDispatch
from services.router.engine import AgentRecord, CaseRecord, Engine
from services.router.metrics import RouterMetrics
from services.router.roster import DEFAULT_FLOOR, Roster
from services.router.settings import RouterSettings
from services.router.trends_proxy import trends_proxy

log = structlog.get_logger(__name__)
SUBSCRIBER_BUFFER = 1000
FORWARD_BATCH = 100  # classified records forwarded to the inbox together
FORWARD_WAIT_S = 0.05  # the longest a classified record waits for its batch
PRUNE_INTERVAL_S = 300.0  # how often customers past the thread window are forgotten
# Inbox records applied together: their events sent together, one table flush, then one
# acknowledgement. A batch's live-stream events stay well under a subscriber's buffer.
INBOX_BATCH = 100
INBOX_WAIT_S = 0.01  # the longest a lone inbox record (an agent's command) waits for others
DEFAULT_SLA_PATH = Path(__file__).with_name("config") / "sla.yaml"
RECORD_OVERHEAD_BYTES = 1024  # a record's framing and key, well over what they take


@dataclass
class _Subscriber:
    agent_id: str
    supervisor: bool
    queue: asyncio.Queue[tuple[CaseEvent, bytes] | None]
    token_sha256: str | None = None

    @property
    def id(self) -> str:
        return self.agent_id

    @property
    def is_supervisor(self) -> bool:
        return self.supervisor


@dataclass
class RouterRuntime:
    """The live worker as the API sees it: state, readiness, command results, live streams."""

    settings: RouterSettings
    metrics: RouterMetrics
    build_engine: Any
    floor: str = DEFAULT_FLOOR
    partition: int = 0  # the floor's inbox partition
    current: Engine | None = None
    recovered: bool = False
    owns_inbox: bool = False
    send_inbox: Any = None
    pending: dict[uuid.UUID, asyncio.Future[CommandResult]] = field(default_factory=dict)
    subscribers: list[_Subscriber] = field(default_factory=list)
    clock: TickClock | None = None
    applied: int = 0
    rebalancing: Any = None
    # Agents whose every console stream closed: when the grace period ends for each.
    gone: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    lost: set[asyncio.Task[Any]] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.clock is None:
            self.clock = TickClock(
                resend_after_s=self.settings.tick_resend_s,
                heartbeat_s=self.settings.tick_heartbeat_s,
            )

    @property
    def engine(self) -> Engine | None:
        return self.current

    @property
    def ready(self) -> bool:
        busy = bool(self.rebalancing()) if self.rebalancing is not None else False
        return self.recovered and self.owns_inbox and self.current is not None and not busy

    async def submit(self, command: Command) -> CommandResult:
        loop = asyncio.get_running_loop()
        future = self.pending.get(command.command_id)
        if future is None:
            future = loop.create_future()
            self.pending[command.command_id] = future
        try:
            await self.send_inbox(command)
            return await asyncio.wait_for(
                asyncio.shield(future), timeout=self.settings.command_timeout_s
            )
        finally:
            if future.done():
                self.pending.pop(command.command_id, None)

    def resolve(self, result: CommandResult) -> None:
        future = self.pending.pop(result.command_id, None)
        if future is not None and not future.done():
            future.set_result(result)

    def subscribe(
        self, agent_id: str, supervisor: bool, *, token_sha256: str | None = None
    ) -> asyncio.Queue[tuple[CaseEvent, bytes] | None]:
        queue: asyncio.Queue[tuple[CaseEvent, bytes] | None] = asyncio.Queue(
            maxsize=SUBSCRIBER_BUFFER
        )
        self.subscribers.append(_Subscriber(agent_id, supervisor, queue, token_sha256))
        timer = self.gone.pop(agent_id, None)
        if timer is not None:
            timer.cancel()
        return queue

    def refresh_streams(self) -> None:
        """End the live streams whose agent was removed, had the token rotated or lost the
        supervisor tier since the stream opened (the client reconnects and is checked anew)."""
        engine = self.current
        if engine is None:
            return
        for subscriber in list(self.subscribers):
            state = engine.agents.get(subscriber.agent_id)
            if (
                state is None
                or state.profile.token_sha256 != subscriber.token_sha256
                or (subscriber.supervisor and not state.profile.is_supervisor)
            ):
                self._cut_off(subscriber)

    def _cut_off(self, subscriber: _Subscriber) -> None:
        self.unsubscribe(subscriber.queue)
        with contextlib.suppress(asyncio.QueueEmpty):
            while True:
                subscriber.queue.get_nowait()
        subscriber.queue.put_nowait(None)

    def unsubscribe(self, queue: asyncio.Queue[tuple[CaseEvent, bytes] | None]) -> None:
        closed = [s.agent_id for s in self.subscribers if s.queue is queue]
        self.subscribers = [s for s in self.subscribers if s.queue is not queue]
        grace = self.settings.disconnect_grace_s
        for agent_id in closed:
            if grace and agent_id not in self.gone and not self._connected(agent_id):
                loop = asyncio.get_running_loop()
                self.gone[agent_id] = loop.call_later(grace, self._console_lost, agent_id)

    def _connected(self, agent_id: str) -> bool:
        return any(s.agent_id == agent_id for s in self.subscribers)

    def _console_lost(self, agent_id: str) -> None:
        """The grace period ended with no stream of the agent open: if they are still
        available, the inbox sets them away (applied in order, on whichever worker is active)."""
        self.gone.pop(agent_id, None)
        engine = self.current
        state = engine.agents.get(agent_id) if engine is not None else None
        if self._connected(agent_id) or state is None or state.presence != Presence.AVAILABLE:
            return
        command = Disconnected(command_id=uuid.uuid4(), actor=agent_id, at=datetime.now(UTC))
        task = asyncio.get_running_loop().create_task(self._send_lost(command))
        self.lost.add(task)
        task.add_done_callback(self.lost.discard)

    async def _send_lost(self, command: Command) -> None:
        try:
            await self.submit(command)
        except Exception:  # the agent's next disconnection tries again
            log.warning("could not set a disconnected agent away", agent=command.actor)

    def publish(self, event: CaseEvent, payload: bytes) -> None:
        for subscriber in list(self.subscribers):
            if not receives(subscriber, event):
                continue
            try:
                subscriber.queue.put_nowait((event, payload))
            except asyncio.QueueFull:
                # A client that does not read is cut off; it reconnects and gets a snapshot.
                self._cut_off(subscriber)

    def close_streams(self) -> None:
        for subscriber in self.subscribers:
            with contextlib.suppress(asyncio.QueueFull):
                subscriber.queue.put_nowait(None)
        self.subscribers = []
        for timer in self.gone.values():
            timer.cancel()
        self.gone.clear()

    def metrics_text(self) -> bytes:
        return metrics_payload(self.metrics.registry)


def changelog_partition(records: Sequence[EventT[bytes]]) -> int:
    """The changelog partition of the table writes these inbox records made: theirs.

    faust finds it from the record a stream iteration is on, which a batch has not (faust:
    "Cannot modify table key from outside of stream iteration"), so the writes name it, as
    faust's own table write does (send_changelog, then the local store)."""
    (partition,) = {event.message.partition for event in records}
    return int(partition)


class BrokerOutputs:
    """The worker's topics and tables, as the inbox applier of one floor writes to them."""

    def __init__(
        self,
        *,
        inbox: Any,
        partition_of: Callable[[str], int],
        stored_key: Callable[[str], str],
        events: Any,
        corrections: Any,
        notices: Any,
        cases: AcknowledgedTable,
        agents: AcknowledgedTable,
        stream: faust.Stream[bytes],
        dead_letter: Callable[[EventT[bytes], str, str], Awaitable[None]],
    ) -> None:
        self.inbox = inbox
        self.partition_of = partition_of
        self.stored_key = stored_key
        self.events = events
        self.corrections = corrections
        self.notices = notices
        self.cases = cases
        self.agents = agents
        self.stream = stream
        self._dead_letter = dead_letter

    async def publish(
        self,
        events: Sequence[Produced],
        corrections: Sequence[Produced],
        notices: Sequence[Produced],
        handoffs: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        handed = [
            await self.inbox.send(
                key=floor.encode(), value=value, partition=self.partition_of(floor)
            )
            for floor, value in handoffs
        ]
        refusals = await asyncio.gather(
            send_acknowledged(self.events, [(r.key, r.value) for r in events]),
            send_acknowledged(self.corrections, [(r.key, r.value) for r in corrections]),
            send_acknowledged(self.notices, [(r.key, r.value) for r in notices]),
        )
        for refused in (error for errors in refusals for error in errors):
            if refused is not None:
                raise refused
        for delivery in handed:  # raises when the broker refused a hand-over
            await delivery

    def store(
        self,
        records: Sequence[EventT[bytes]],
        cases: Mapping[str, Any],
        agents: Mapping[str, Any],
    ) -> None:
        partition = changelog_partition(records)
        for table, changes in ((self.cases, cases), (self.agents, agents)):
            for bare, value in changes.items():
                key = self.stored_key(bare)
                if value is not None:
                    table.send_changelog(partition, key, value)
                    table.data[key] = value
                elif key in table.data:
                    table.send_changelog(partition, key, None, value_serializer="raw")
                    del table.data[key]

    def write_journal(self, records: Sequence[EventT[bytes]], parts: Sequence[JournalPart]) -> None:
        partition = changelog_partition(records)
        for part in parts:
            key = self.stored_key(part.key)
            self.cases.send_changelog(partition, key, part.data, value_serializer="raw")
            self.cases.data[key] = part.value

    async def stored(self) -> None:
        await asyncio.gather(self.cases.acknowledged(), self.agents.acknowledged())

    async def acknowledge(self, records: Sequence[EventT[bytes]]) -> None:
        for event in records:
            await self.stream.ack(event)

    async def dead_letter(self, record: EventT[bytes], reason: str, error_type: str) -> None:
        await self._dead_letter(record, reason, error_type)


def create_app(
    settings: RouterSettings,
    kafka: KafkaSettings,
    build_engine: Any,
    *,
    metrics: RouterMetrics | None = None,
) -> tuple[faust.App, dict[str, RouterRuntime]]:
    """The router's faust app and a runtime per floor of the roster; ``build_engine(floor)``
    makes an empty engine of a floor."""
    metrics = metrics or RouterMetrics()
    roster: Roster = build_engine().roster
    several = bool(roster.floors)
    runtimes = {
        floor: RouterRuntime(
            settings=settings,
            metrics=metrics,
            build_engine=functools.partial(build_engine, floor),
            floor=floor,
            partition=partition,
        )
        for partition, floor in enumerate(roster.floor_ids)
    }
    by_partition_no = {runtime.partition: runtime for runtime in runtimes.values()}
    partitions = len(runtimes)
    metrics.watch(lambda: [r.current for r in runtimes.values() if r.current is not None])
    for floor in runtimes:
        metrics.tick_applied(0.0, floor)  # none yet: the series exists from the start
    app = TriageApp(
        settings.app_id,
        **kafka.faust_options(),
        store=settings.store,
        datadir=str(settings.data_dir),
        web_enabled=False,
        # The agent API is served by uvicorn; should faust's web server ever be turned on,
        # its table and router views must still not serve the cases and agents tables.
        web_tables_enabled=False,
        web_router_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
        # What the other workers learn of this one with the partition assignment: where its
        # agent API answers (requests for a floor this worker does not route go there).
        canonical_url=settings.api_url(),
        consumer_auto_offset_reset="earliest",
        topic_partitions=partitions,
        autodiscover=False,
    )
    classified = raw_topic(app, kafka, feedback_classified)
    inbox = raw_topic(app, kafka, router_inbox)
    events_topic = raw_topic(app, kafka, cases_events)
    corrections_topic = raw_topic(app, kafka, feedback_corrections)
    notices_topic = raw_topic(app, kafka, agents_events)
    dead = {
        feedback_classified.name: raw_topic(app, kafka, feedback_classified_dlq),
        router_inbox.name: raw_topic(app, kafka, router_inbox_dlq),
    }
    cases_table = acknowledged_table(
        app,
        "cases",
        default=None,
        partitions=partitions,
        key_type=str,
        help="Every case with its clocks, by case id (by floor and case id with floors).",
    )
    agents_table = acknowledged_table(
        app,
        "agents",
        default=None,
        partitions=partitions,
        key_type=str,
        help="Agents' presence and roster changes, by agent id (by floor and agent id).",
    )

    def stored_key(runtime: RouterRuntime) -> Callable[[str], str]:
        """A floor's table keys: the bare id with one floor; with several, the floor first, so
        a case handed from one floor to another is two keys (the tables of every floor a
        worker routes share one store, and two partitions' changelogs recover in any order)."""
        prefix = f"{runtime.floor}/" if several else ""
        return lambda key: prefix + key

    def own_items(table: AcknowledgedTable, runtime: RouterRuntime) -> list[tuple[str, Any]]:
        prefix = f"{runtime.floor}/" if several else ""
        return [
            (key[len(prefix) :], value)
            for key, value in list(table.items())
            if key.startswith(prefix) and value is not None
        ]

    def inbox_sender(runtime: RouterRuntime) -> Callable[[Any], Awaitable[None]]:
        key = runtime.floor.encode()

        async def send_inbox(message: ClassifiedIn | Command | Tick) -> None:
            value = message.model_dump_json().encode()
            await inbox.send(key=key, value=value, partition=runtime.partition)

        return send_inbox

    for runtime in runtimes.values():
        runtime.send_inbox = inbox_sender(runtime)
        runtime.rebalancing = lambda: app.rebalancing

    async def send_dead(spec_name: str, event: EventT[bytes], reason: str, error: str) -> None:
        message = event.message
        letter = DeadLetter.for_record(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            reason=reason,
            error_type=error,
            service="router",
            now=_now(),
        )
        if not await send_dead_letter(dead[spec_name], letter, message.key):
            return
        metrics.dead_letters.labels(spec_name).inc()
        log.warning(
            "record sent to dead letters",
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            error_type=error,
        )

    def rebuild(runtime: RouterRuntime) -> None:
        engine: Engine = runtime.build_engine()
        records, agent_records, notes = [], [], []
        stored_cases, stored_agents = stored_state(
            own_items(cases_table, runtime), own_items(agents_table, runtime)
        )
        for key, value in stored_cases.items():
            try:
                if key.startswith(MOVED_PREFIX):
                    notes.append(Moved.model_validate(value))
                else:
                    records.append(CaseRecord.model_validate(value))
            except ValidationError:
                log.exception("stored case unreadable; skipped", case_id=key)
        for key, value in stored_agents.items():
            try:
                agent_records.append(AgentRecord.model_validate(value))
            except ValidationError:
                log.exception("stored agent unreadable; skipped", agent_id=key)
        engine.reset(records=records, agents=agent_records, moved=notes)
        runtime.current = engine
        runtime.refresh_streams()
        log.info(
            "routing state loaded",
            floor=runtime.floor,
            cases=len(records),
            agents=len(engine.agents),
        )

    async def on_recovered() -> None:
        inbox_name = kafka.topic(router_inbox)
        owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == inbox_name}
        for runtime in runtimes.values():
            runtime.owns_inbox = runtime.partition in owned
            if runtime.owns_inbox:
                rebuild(runtime)
            else:  # another worker routes this floor now: its agents reconnect there
                runtime.current = None
                runtime.close_streams()
            assert runtime.clock is not None
            runtime.clock.failed()  # a tick sent before the rebalance may never be applied here
            runtime.recovered = True
        log.info("router recovered", floors=[r.floor for r in runtimes.values() if r.owns_inbox])

    cases_table.on_recover(on_recovered)

    # The producer refuses a record over its request size at once, for the whole batch: a
    # record that would be refused is dead-lettered alone (with room for the record's framing).
    max_inbox_bytes = app.conf.producer_max_request_size - RECORD_OVERHEAD_BYTES
    # With floors, where each customer's last message went (a table beside feedback.classified,
    # which is keyed by customer: one forwarder reads all of a customer's messages).
    forwarded_to = (
        CustomerFloors(
            acknowledged_table(
                app,
                "customer-floors",
                default=None,
                partitions=feedback_classified.partitions,
                key_type=str,
                help="The floor each customer's last message went to, for the thread window.",
            ),
            window=settings.engine_settings().thread_window,
        )
        if several
        else None
    )

    def floor_of(message: FeedbackClassified, now: datetime, partition: int) -> str:
        """The floor a classified message goes to: the customer's last one within the thread
        window (a follow-up joins its case whatever its tags), else its category's."""
        if forwarded_to is None:
            return roster.floor_ids[0]
        customer = message.feedback.customer.id
        floor = forwarded_to.get(customer, now)
        if floor is None:
            try:
                floor = roster.floor_for(Category(message.category.label))
            except ValueError:
                floor = roster.floor_of(roster.default_team)
        forwarded_to.remember(customer, floor, now, partition)
        return floor

    @app.agent(classified, name="forward-feedback")
    async def forward_feedback(stream: faust.StreamT[bytes]) -> None:
        assert isinstance(stream, faust.Stream)
        # The batch's classified records are acknowledged when the next batch is taken, so
        # their inbox records must be acknowledged by the broker before this loop goes on.
        batches = stream.take_events(FORWARD_BATCH, within=FORWARD_WAIT_S)
        async for events in batches:
            forwarded: list[tuple[str, tuple[bytes, EventT[bytes]]]] = []
            for event in events:
                try:
                    message = FeedbackClassified.model_validate_json(event.value)
                except ValidationError as exc:
                    await send_dead(
                        feedback_classified.name, event, first_error(exc), "ValidationError"
                    )
                    continue
                except ValueError as exc:
                    await send_dead(feedback_classified.name, event, str(exc), type(exc).__name__)
                    continue
                now = _now()
                value = inbox_record(message, now)
                if len(value) > max_inbox_bytes:
                    reason = f"too large for the inbox: {len(value)} bytes"
                    await send_dead(feedback_classified.name, event, reason, "RecordTooLarge")
                    continue
                floor = floor_of(message, now, event.message.partition)
                forwarded.append((floor, (value, event)))
            parts = floor_parts(forwarded)
            refusals = await asyncio.gather(
                *(
                    send_acknowledged(
                        inbox,
                        [(floor.encode(), value) for value, _ in part],
                        partition=roster.partition_of(floor),
                    )
                    for floor, part in parts
                )
            )
            if forwarded_to is not None:
                await forwarded_to.stored()
            for (_, part), refused_part in zip(parts, refusals, strict=True):
                for (_, event), refused in zip(part, refused_part, strict=True):
                    if refused is not None:
                        reason = f"refused by the broker: {type(refused).__name__}: {refused}"
                        error = type(refused).__name__
                        await send_dead(feedback_classified.name, event, reason, error)

    if forwarded_to is not None:
        customer_floors = forwarded_to

        @app.timer(interval=PRUNE_INTERVAL_S)  # type: ignore[untyped-decorator]
        async def forget_customers() -> None:
            """Where customers went past the thread window is forgotten (on the partitions of
            feedback.classified this worker reads: the others' are theirs to prune)."""
            topic = kafka.topic(feedback_classified)
            mine = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}
            if customer_floors.prune(_now(), mine):
                await customer_floors.stored()

    def current_engine(runtime: RouterRuntime) -> Callable[[], Engine]:
        def engine() -> Engine:
            if runtime.current is None:
                rebuild(runtime)
            assert runtime.current is not None
            return runtime.current

        return engine

    def reloader(runtime: RouterRuntime) -> Callable[[], None]:
        def reload() -> None:
            # The engine may be half-way through a change: reload it from the tables. A tick
            # that failed is sent again rather than awaited forever.
            rebuild(runtime)
            assert runtime.clock is not None
            runtime.clock.failed()

        return reload

    async def send_inbox_dead(event: EventT[bytes], reason: str, error_type: str) -> None:
        await send_dead(router_inbox.name, event, reason, error_type)

    def applied(runtime: RouterRuntime, done: Applied[EventT[bytes]]) -> None:
        """What follows a record once it is on the broker: metrics, live streams, the API's
        waiting call, the clock."""
        outcome = done.outcome
        metrics.inbox_seconds.labels(done.message.kind).observe(done.seconds)
        if outcome.duplicate:
            metrics.duplicates.inc()
        for case_event, payload in zip(outcome.events, outcome.payloads, strict=True):
            metrics.observe_event(case_event)
            runtime.publish(case_event, payload)
        for correction in outcome.corrections:
            for tag in ("sentiment", "category", "difficult"):
                if getattr(correction, f"label_{tag}") is not None:
                    metrics.corrections.labels(tag).inc()
        for notice in outcome.notices:
            metrics.set_away.labels(notice.reason.value).inc()
            log.info("agent set away", agent=notice.agent_id, reason=notice.reason.value)
        for handoff in outcome.handoffs:
            metrics.handoffs.labels(handoff.message.kind).inc()
        for clock in done.clocks:
            metrics.observe_clock(clock.metric, clock.channel, clock.priority, clock.met)
        if outcome.result is not None:
            runtime.resolve(outcome.result)
        if outcome.agents:
            runtime.refresh_streams()
        if isinstance(done.message, Tick):
            assert runtime.clock is not None
            runtime.clock.applied(time.monotonic())
            metrics.tick_applied(time.time(), runtime.floor)
        runtime.applied += 1

    @app.agent(inbox, name="apply-inbox")
    async def apply_inbox(stream: faust.StreamT[bytes]) -> None:
        assert isinstance(stream, faust.Stream)
        appliers = {
            runtime.partition: InboxApplier(
                BrokerOutputs(
                    inbox=inbox,
                    partition_of=roster.partition_of,
                    stored_key=stored_key(runtime),
                    events=events_topic,
                    corrections=corrections_topic,
                    notices=notices_topic,
                    cases=cases_table,
                    agents=agents_table,
                    stream=stream,
                    dead_letter=send_inbox_dead,
                ),
                engine=current_engine(runtime),
                reload=reloader(runtime),
                max_journal_bytes=max_inbox_bytes,
            )
            for runtime in runtimes.values()
        }
        # take_events acknowledges the batch again after each pass: a no-op, as the applier
        # has acknowledged every record by then.
        async for events in stream.take_events(INBOX_BATCH, within=INBOX_WAIT_S):
            for part in by_partition(events):
                partition = part[0].message.partition
                runtime = by_partition_no.get(partition)
                if runtime is None:  # a partition no floor has (the topic has too many)
                    for event in part:
                        reason = f"inbox partition {partition} is no floor's"
                        await send_inbox_dead(event, reason, "UnknownFloor")
                        await stream.ack(event)
                    continue
                for done in await appliers[partition].apply(part):
                    try:
                        applied(runtime, done)
                    except Exception:  # the record is applied and stored: routing goes on
                        log.exception("after an inbox record was applied")

    @app.timer(interval=settings.tick_interval_s)  # type: ignore[untyped-decorator]
    async def clock() -> None:
        for runtime in runtimes.values():
            engine = runtime.current
            ticks = runtime.clock
            if engine is None or ticks is None or not runtime.ready:
                continue
            now = _now()
            due = engine.next_due()
            if not ticks.should_send(next_due=due, now=now, monotonic=time.monotonic()):
                continue
            ticks.sent(time.monotonic())
            try:
                await runtime.send_inbox(Tick(at=now))
            except Exception:
                ticks.failed()
                raise

    apis = {
        floor: create_api(
            runtime, max_body_bytes=settings.max_body_bytes, registry=metrics.registry
        )
        for floor, runtime in runtimes.items()
    }
    for api in apis.values():
        api.include_router(trends_proxy(settings.trends_url))
    if several:
        tokens = {
            profile.token_sha256: roster.floor_of(profile.team)
            for profile in roster.agents
            if profile.token_sha256
        }

        def owner(floor: str) -> str | None:
            partition = runtimes[floor].partition
            topic = cases_table.changelog_topic.get_topic_name()
            for url, topics in app.router.table_metadata("cases").items():
                if partition in topics.get(topic, ()):
                    return str(url)
            return None

        served: Any = FloorDispatch(
            apps=apis,
            runtimes=runtimes,
            floor_of_token=tokens.get,
            owner=owner,
            max_body_bytes=settings.max_body_bytes,
            self_url=settings.api_url(),
        )
    else:
        served = apis[roster.floor_ids[0]]
    server = embedded_server(served, host=settings.host, port=settings.port)

    @app.task  # type: ignore[untyped-decorator]
    async def serve_api() -> None:
        log.info("agent API listening", host=settings.host, port=settings.port)
        await server.serve()

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def stop_api(sender: Any, **kwargs: Any) -> None:
        for runtime in runtimes.values():
            runtime.close_streams()
        server.should_exit = True

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        for runtime in runtimes.values():
            runtime.recovered = False

    metrics.registry.register(ConsumerLagCollector(app))
    app.triage_runtimes = runtimes  # type: ignore[attr-defined]
    return app, runtimes


def floor_parts(items: Sequence[tuple[str, Any]]) -> list[tuple[str, list[Any]]]:
    """Items by floor, each floor's in order, floors in the order they first appear."""
    parts: dict[str, list[Any]] = {}
    for floor, item in items:
        parts.setdefault(floor, []).append(item)
    return list(parts.items())


class CustomerFloors:
    """Where each customer's last message went, for the thread window: a follow-up goes to the
    same floor whatever its tags, so it joins the customer's case there. Kept in a
    changelog-backed table, written from the forwarder's batch (hence the partition named, as
    :class:`BrokerOutputs` does), so a worker taking the customer's partition over knows it."""

    def __init__(self, table: AcknowledgedTable, *, window: timedelta) -> None:
        self.table = table
        self.window = window

    def get(self, customer: str, now: datetime) -> str | None:
        entry = self.table.data.get(customer)
        if not isinstance(entry, dict):
            return None
        try:
            at = datetime.fromisoformat(entry["at"])
            floor = str(entry["floor"])
        except (KeyError, TypeError, ValueError):
            return None
        return floor if now - at <= self.window else None

    def remember(self, customer: str, floor: str, now: datetime, partition: int) -> None:
        value = {"floor": floor, "at": now.isoformat(), "partition": partition}
        self.table.send_changelog(partition, customer, value)
        self.table.data[customer] = value

    def prune(self, now: datetime, partitions: set[int]) -> int:
        """Forget the customers past the window on these partitions; how many."""
        gone = 0
        for customer, entry in list(self.table.data.items()):
            if not isinstance(entry, dict) or entry.get("partition") not in partitions:
                continue
            if self.get(customer, now) is not None:
                continue
            self.table.send_changelog(entry["partition"], customer, None, value_serializer="raw")
            del self.table.data[customer]
            gone += 1
        return gone

    async def stored(self) -> None:
        await self.table.acknowledged()


def by_partition(events: Sequence[EventT[bytes]]) -> list[list[EventT[bytes]]]:
    """A batch split by inbox partition, each in order: a partition's records change its own
    state only."""
    parts: dict[int, list[EventT[bytes]]] = {}
    for event in events:
        parts.setdefault(event.message.partition, []).append(event)
    return list(parts.values())


def inbox_record(message: FeedbackClassified, at: datetime) -> bytes:
    """The inbox record of a classified message, without what routing never reads (a chat's
    transcript, an e-mail's recipients and attachments): the case keeps the text, and the
    whole event stays on feedback.classified."""
    feedback = message.feedback
    if feedback.chat is not None or feedback.email is not None:
        feedback = feedback.model_copy(update={"chat": None, "email": None})
        message = message.model_copy(update={"feedback": feedback})
    return ClassifiedIn(at=at, feedback=message).model_dump_json().encode()


def build_engine_factory(settings: RouterSettings) -> Any:
    """A function that makes an empty engine of a floor (the first unless named) from the
    roster and service-level files."""
    from services.router.roster import RosterError, hash_token, load_roster

    roster = load_roster(settings.roster_file)
    if settings.environment == "production":
        # The development tokens are published: refused however the roster is flagged.
        for profile in roster.agents:
            if profile.token_sha256 == hash_token(f"dev-{profile.id}"):
                raise RosterError(
                    f"agent '{profile.id}' has the published development token "
                    "(sha256 of 'dev-<id>'): refused in production"
                )
    config = load_sla_file(settings.sla_file)
    engine_settings = settings.engine_settings()
    Engine(roster, config, engine_settings)  # validates the combination now, not at first use

    def build(floor: str | None = None) -> Engine:
        return Engine(roster, config, engine_settings, floor=floor)

    return build


def load_sla_file(path: Path | None) -> sla.SlaConfig:
    """The service-level file (default: the one shipped with the project)."""
    path = path or DEFAULT_SLA_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise sla.SlaConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return sla.load_sla_config(text)
    except sla.SlaConfigError as exc:
        raise sla.SlaConfigError(f"{path}: {exc}") from None
