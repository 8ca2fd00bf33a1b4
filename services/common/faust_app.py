"""The faust app every stream worker runs on: faust extended, through its extension points,
so that no record is committed unprocessed (see :mod:`services.common.faust_offsets`).

* :class:`Transport` is faust's aiokafka transport with its own :class:`Consumer` (and consumer
  thread), registered in faust's transport registry under :data:`FAUST_SCHEME`: faust picks a
  transport by the scheme of the broker URL, so an app gets these consumers only when its
  broker URL names that scheme (``KafkaSettings.faust_options()`` does).
* :class:`TriageApp` checks, when it is created, that the installed faust-streaming is the
  version the consumer was written for (it overrides faust internals that change between
  releases), registers the transport, and uses :class:`Stream`, which always iterates with
  faust's Python stream iterator: the compiled one acknowledges inline rather than through
  ``Consumer.ack``, where the acknowledgement rules live.
* Its flow control notes the records it drops from the stream buffers, for the consumer to
  read them again.

faust also fixes the fetch wait of its consumer at 1.5 s. The embedded broker holds a fetch
for a good part of that wait even when records arrive, and every hop of the pipeline (ingest
to classifier to router, and each agent command) paid it: ``TriageApp(fetch_max_wait_ms=...)``
sets it.

Nothing here changes faust for other apps in the process: a plain ``faust.App`` on a
``kafka://`` URL runs faust's own code (the offset tests use one to show what faust alone does).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, ClassVar, Final, cast

import aiokafka
import faust
from aiokafka.errors import IllegalStateError
from faust.transport import drivers as faust_drivers
from faust.transport.consumer import CONSUMER_FETCHING, ensure_TP
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, AppT, ConsumerT, Message
from faust.utils.urls import urllist
from mode import Service
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from services.common.errors import ConfigurationError
from services.common.faust_offsets import (
    ack_counts,
    first_dropped,
    first_skipped,
    never_committed,
    next_commit,
    read_again_from,
)
from services.common.kafka import FAUST_SCHEME

log = logging.getLogger(__name__)

#: The faust-streaming release the consumer below was written for and tested against.
FAUST_VERSION: Final = "0.15.3"


def check_faust_version(installed: str) -> None:
    """Refuse to run on a faust-streaming other than :data:`FAUST_VERSION`."""
    if installed != FAUST_VERSION:
        raise ConfigurationError(
            f"faust-streaming {installed} is installed, but services/common/faust_app.py "
            f"overrides internals of faust-streaming {FAUST_VERSION}: install that version "
            "(pyproject.toml pins it), or port the overrides and the offset tests "
            "(tests/common/test_faust_offsets.py) to the new one and change FAUST_VERSION"
        )


def register_transport() -> None:
    """Name :class:`Transport` in faust's transport registry under :data:`FAUST_SCHEME`."""
    faust_drivers.TRANSPORTS[FAUST_SCHEME] = f"{__name__}:Transport"


class ReadAgainFlowControl(FlowControlEvent):
    """faust's flow control, which shows the records in the stream buffers to its listeners
    before it empties the buffers (when it resumes the flow after a rebalance or recovery)."""

    def __init__(self, *, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(loop=loop)
        self._before_clear: list[Callable[[list[Any]], None]] = []

    def before_clear(self, listener: Callable[[list[Any]], None]) -> None:
        """Call ``listener`` with the buffered items each time the buffers are emptied."""
        self._before_clear.append(listener)

    def clear(self) -> None:
        items = [item for queue in list(self._queues) for item in list(queue._queue)]  # type: ignore[attr-defined]
        super().clear()
        for listener in self._before_clear:
            listener(items)


class Stream(faust.Stream):  # type: ignore[type-arg]
    """faust's stream, always with its Python iterator (see the module's docstring)."""

    def __aiter__(self) -> AsyncIterator[Any]:
        iterator = self._py_aiter()
        # What faust's own __aiter__ does with the iterator: on_stop() closes it.
        self._active_agens.add(cast(AsyncGenerator[Any, None], iterator))
        return iterator


class TriageApp(faust.App):
    """A faust app whose consumer never commits past a record it did not process.

    ``broker`` (or ``broker_consumer``) must use :data:`FAUST_SCHEME`;
    ``fetch_max_wait_ms`` is the consumer's fetch wait (None: faust's 1.5 s).
    """

    def __init__(self, id: str, *, fetch_max_wait_ms: int | None = None, **options: Any) -> None:
        check_faust_version(importlib.metadata.version("faust-streaming"))
        register_transport()
        broker = options.get("broker_consumer", options.get("broker"))
        schemes = {url.scheme for url in urllist(broker)} if broker else set()
        if schemes != {FAUST_SCHEME}:
            raise ConfigurationError(
                f"a TriageApp's broker URLs must use the {FAUST_SCHEME}:// scheme "
                f"(KafkaSettings.faust_options() gives them), not {sorted(schemes) or 'none'}"
            )
        stream = options.setdefault("Stream", Stream)
        if not (isinstance(stream, type) and issubclass(stream, Stream)):
            raise ConfigurationError(f"a TriageApp's Stream must subclass {Stream.__qualname__}")
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(id, **options)

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return ReadAgainFlowControl(loop=self.loop)


def _triage_app(app: AppT) -> TriageApp:
    if not isinstance(app, TriageApp):
        raise ConfigurationError(
            f"the {FAUST_SCHEME}:// transport needs a TriageApp (its stream iterator and flow "
            f"control), not a {type(app).__qualname__}"
        )
    return app


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's consumer thread, with the app's fetch wait."""

    def _create_worker_consumer(
        self, transport: faust_aiokafka.Transport
    ) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = _triage_app(self.app).fetch_max_wait_ms
        if wait_ms is not None:
            # faust passes a constant 1500 to aiokafka; the fetcher reads this when it starts.
            consumer._fetch_max_wait_ms = wait_ms
        return consumer


class Consumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer, reading skipped and dropped records again rather than
    committing past them (the rules are in :mod:`services.common.faust_offsets`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Partition -> first record dropped from a stream buffer, to seek back to.
        self._rewinds: dict[TP, int] = {}
        flow_control = _triage_app(self.app).flow_control
        cast(ReadAgainFlowControl, flow_control).before_clear(self._read_dropped_again)

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _read_dropped_again(self, items: list[Any]) -> None:
        """Set read offsets back before the records the flow control drops."""
        dropped = first_dropped(items, self.app.topics.acks_enabled_for)
        for tp, offset in dropped.items():
            read = self._read_offset.get(tp)
            if read is not None and read >= offset:
                log.warning(
                    "records from %s of %s were dropped from a stream buffer; reading them again",
                    offset,
                    tp,
                )
                self._rewinds[tp] = min(offset, self._rewinds.get(tp, offset))

    async def _rewind(self, tp: TP) -> bool:
        """Seek a partition back to the first record dropped from a stream buffer; False when
        it stays where it is (see :func:`read_again_from`)."""
        offset = read_again_from(self._read_offset.get(tp), self._rewinds.pop(tp))
        if offset is None:
            return False
        if tp not in self.assignment():
            return False  # revoked: its next owner starts from the committed offset
        try:
            await self.seek_wait({tp: offset})
        except IllegalStateError:
            return False  # revoked meanwhile
        self._read_offset[tp] = offset - 1
        log.info("%s sought back to %s (records dropped from a stream buffer)", tp, offset)
        return True

    def ack(self, message: Message) -> bool:
        app = self.app
        if ack_counts(
            message.generation_id, app.consumer_generation_id, app.flow_control.is_active()
        ):
            return super().ack(message)
        log.debug(
            "acknowledgement of %s offset %s not counted (fetched in generation %s, now %s; "
            "flow %s): it is read again after the rebalance",
            message.tp,
            message.offset,
            message.generation_id,
            app.consumer_generation_id,
            "running" if app.flow_control.is_active() else "stopped",
        )
        message.acked = True  # done with here; the record itself is read again
        self._unacked_messages.discard(message)
        return False

    def _new_offset(self, tp: TP) -> int | None:  # pragma: no cover - faust's, with next_commit
        acked = self._acked[tp]
        if not acked:
            return None
        gap_for_tp = self._gap[tp]
        if gap_for_tp:
            # Offsets not in the log count as acknowledged (faust's own handling of gaps).
            highest = max(acked)
            candidates = sorted(gap_for_tp.overlap(0, highest), key=lambda interval: interval.begin)
            if candidates:
                filled = [n for interval in candidates for n in range(interval.begin, interval.end)]
                acked.extend(filled)
                gap_for_tp.chop(0, max(filled[-1], highest + 1))
        acked.sort()
        offset, used = next_commit(acked, self._committed_offset[tp])
        if offset is None:
            return None
        batch = acked[:used]
        acked[:used] = []
        self._acked_index[tp].difference_update(batch)
        return offset

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - faust's loop
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set

        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        # Partition -> offset it was last sought back to, to tell a skip from a hole in the log.
        rewound: dict[TP, int] = {}

        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                for tp in list(self._rewinds):
                    await self._rewind(tp)
                set_flag(CONSUMER_FETCHING)
                ait = getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    dropped: set[TP] = set()
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0
                        if tp in self._rewinds and await self._rewind(tp):
                            dropped.add(tp)
                        if tp in dropped:
                            continue
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            skipped = first_skipped(r_offset, offset)
                            if skipped is not None and acks_enabled_for(message.topic):
                                if rewound.get(tp) != skipped:
                                    log.warning(
                                        "records %s-%s of %s were fetched but not delivered; "
                                        "reading them again",
                                        skipped,
                                        offset - 1,
                                        tp,
                                    )
                                    rewound[tp] = skipped
                                    dropped.add(tp)
                                    await self.seek_wait({tp: skipped})
                                    set_read_offset(tp, skipped - 1)
                                    continue
                                log.warning(
                                    "offsets %s-%s of %s are not in the log; skipping them",
                                    skipped,
                                    offset - 1,
                                    tp,
                                )
                                await self._add_gap(tp, skipped, offset - 1)
                            rewound.pop(tp, None)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            await self.wait_first(callback(message), self.suspend_flow.wait())
                            set_read_offset(tp, offset)
                    unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)

    async def perform_seek(self) -> None:  # pragma: no cover - faust's own, but for the seeks
        read_offset = self._read_offset
        committed = await self.seek_to_committed()
        unread = never_committed(committed, self.app.topics.acks_enabled_for)
        if unread and self.app.conf.consumer_auto_offset_reset == "earliest":
            try:
                await self._thread.seek_to_beginning(*unread)
            except IllegalStateError:
                log.warning("partitions %s were revoked before their seek to the beginning", unread)
        log.info(
            "sought to the committed offsets: %s; to the beginning: %s",
            {
                f"{tp.topic}/{tp.partition}": offset
                for tp, offset in committed.items()
                if self.app.topics.acks_enabled_for(tp.topic)
            },
            sorted(f"{tp.topic}/{tp.partition}" for tp in unread),
        )
        for tp, offset in committed.items():
            if offset is None or offset < 0:
                read_offset[tp] = None
            elif self.app.topics.acks_enabled_for(tp.topic):
                read_offset[tp] = offset - 1  # the last offset processed, not the next to read
            else:
                read_offset[tp] = offset
        self._committed_offset.update(
            {
                ensure_TP(tp): offset if offset else None
                for tp, offset in committed.items()
                if offset is not None
            }
        )


class Transport(faust_aiokafka.Transport):
    """faust's aiokafka transport with :class:`Consumer`; registered as :data:`FAUST_SCHEME`."""

    Consumer: ClassVar[type[ConsumerT]] = Consumer

    def __init__(self, url: Any, app: AppT, *args: Any, **kwargs: Any) -> None:
        super().__init__(url, _triage_app(app), *args, **kwargs)
