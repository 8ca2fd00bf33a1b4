"""Never commit past a record that was not processed.

faust-streaming's fetch loop (``Consumer._drain_messages``) treats a jump in offsets within a
partition as a *gap* (records removed by compaction, or transaction markers) and counts the
missing offsets as acknowledged, so the next commit moves past them. The same jump also happens
when records were fetched but never delivered: a batch cut short by a rebalance, or a fetch that
was in flight while the worker recovered and sought back to its committed offsets. Those records
were then committed unprocessed: a complaint lost at a worker restart or a rebalance.

None of this product's consumed topics is compacted or transactional, so a jump is always a
skipped record. This loop, otherwise faust's own, seeks the partition back to the first offset
it has not delivered and drops the rest of the batch for that partition; the records come
again from the broker and are processed (the workers are idempotent, so a repeat is harmless).
A jump that is still there after a rewind to the same offset is a real hole in the log and is
accepted as faust would.

After a seek to the committed offsets (every rebalance and recovery), faust sets the read
offset to the committed offset itself, the next one to read, so a first record one past it
looked consecutive and the record at the committed offset was committed unprocessed. The
read offset is set one lower here, to the last offset processed, as everywhere else.

faust's seek to the committed offsets (aiokafka's ``seek_to_committed``) leaves a partition
with no committed offset where the fetcher stands. A worker that restarts before its first
commit on a partition fetches that partition's records while its tables recover, skips them
because the partition is paused, and then starts from the end of what it fetched: those
records were never processed, and no later jump shows them, because nothing was delivered
before. Such partitions are sought to their beginning instead, which is where a group with
no committed offset starts (``consumer_auto_offset_reset="earliest"``).

faust also empties every stream buffer whenever it resumes the flow after a rebalance or a
recovery, and at the end of a recovery it does so *after* seeking to the committed offsets,
so records fetched in between were dropped although the read offset had passed them: a hole
that nothing read again, and that no commit could pass. The buffers' records are noted before
they are dropped, and the fetch loop seeks back to the first of them.

Two more holes of the same kind are closed by construction. First, an acknowledgement made
while a rebalance is under way (the flow is stopped) or of a record fetched in an earlier
generation of the group counted toward the next commit, and faust commits on a timer even
between a new assignment and its seek to the committed offsets, when the worker knows no
committed offset for its partitions and so checks nothing: faust's Python stream iterator
acknowledges the records it skips during a rebalance, unprocessed. Such an acknowledgement no
longer counts; the record is read again after the seek that ends every rebalance (a repeat,
which the workers skip). Second, faust committed past an unacknowledged record right at the
committed offset (its check let a gap of one at the head through); a commit now waits for it.
faust's compiled stream iterator acknowledges inline rather than through ``Consumer.ack``,
so streams here use faust's Python iterator (the model, not the iterator, sets the pace).

faust also fixes the fetch wait of its consumer at 1.5 s. The embedded broker holds a fetch
for a good part of that wait even when records arrive, and every hop of the pipeline (ingest
to classifier to router, and each agent command) paid it; ``set_fetch_max_wait_ms`` sets it.

``install()`` replaces the methods on faust's classes once per process; the workers call it
when they build their apps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from aiokafka.errors import IllegalStateError
from faust import streams as faust_streams
from faust.transport import consumer as faust_consumer
from faust.transport.consumer import CONSUMER_FETCHING, ensure_TP
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP, Message
from mode import Service

log = logging.getLogger(__name__)

_installed = False


def first_skipped(read_offset: int | None, offset: int) -> int | None:
    """The first offset skipped before ``offset``, given the last delivered one, or None.

    faust's read offset is the last offset delivered, or after a seek the next one to read,
    so only a jump of more than one is a skip (as faust itself decides).
    """
    if read_offset is None or offset - read_offset <= 1:
        return None
    return read_offset + 1


def never_committed(
    committed: Mapping[Any, int | None], acks_enabled_for: Callable[[str], bool]
) -> list[Any]:
    """The partitions of acknowledged topics with nothing committed yet (no offset, or 0),
    which a seek to the committed offsets leaves where the fetcher stands."""
    return [
        tp
        for tp, offset in committed.items()
        if (offset is None or offset <= 0) and acks_enabled_for(tp.topic)
    ]


def first_dropped(items: Iterable[Any], acks_enabled_for: Any) -> dict[TP, int]:
    """The lowest offset per partition among buffered stream items (events and messages) of
    topics whose offsets are acknowledged."""
    lowest: dict[TP, int] = {}
    for item in items:
        message = item if isinstance(item, Message) else getattr(item, "message", None)
        if not isinstance(message, Message) or not acks_enabled_for(message.topic):
            continue
        tp = message.tp
        if tp not in lowest or message.offset < lowest[tp]:
            lowest[tp] = message.offset
    return lowest


def ack_counts(message_generation: int | None, generation: int, flow_active: bool) -> bool:
    """Whether a record's acknowledgement may move the committed offset: only one fetched in
    the group's current generation and acknowledged while the flow runs. Any other is read
    again after the seek to the committed offsets that ends every rebalance."""
    return flow_active and message_generation == generation


def next_commit(acked: list[int], committed: int | None) -> tuple[int | None, int]:
    """The offset to commit given the sorted acknowledged offsets and the committed offset
    (the next to read), and how many acknowledged offsets it consumes: none while the record
    at the committed offset is not acknowledged."""
    if not acked or (committed is not None and acked[0] > committed):
        return None, 0
    run = 1
    while run < len(acked) and acked[run] <= acked[run - 1] + 1:  # a repeat continues the run
        run += 1
    return acked[run - 1] + 1, run


_faust_ack = faust_consumer.Consumer.ack


def _ack(self: Any, message: Message) -> bool:
    app = self.app
    if ack_counts(message.generation_id, app.consumer_generation_id, app.flow_control.is_active()):
        return _faust_ack(self, message)
    message.acked = True  # done with here; the record itself is read again
    self._unacked_messages.discard(message)
    return False


def _new_offset(self: Any, tp: TP) -> int | None:  # pragma: no cover - faust's, with next_commit
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


def _keep_dropped_records(consumer: Any) -> None:
    """Make the app's flow control set read offsets back before the records it drops."""
    flow = consumer.app.flow_control
    if getattr(flow, "_triage_keeps_dropped", False):
        return
    clear = flow.clear

    def clear_and_read_again() -> None:
        items = [item for queue in list(flow._queues) for item in list(queue._queue)]
        dropped = first_dropped(items, consumer.app.topics.acks_enabled_for)
        clear()
        rewinds: dict[TP, int] = consumer._triage_rewinds
        for tp, offset in dropped.items():
            read = consumer._read_offset.get(tp)
            if read is not None and read >= offset:
                log.warning(
                    "records from %s of %s were dropped from a stream buffer; reading them again",
                    offset,
                    tp,
                )
                rewinds[tp] = min(offset, rewinds.get(tp, offset))

    consumer._triage_rewinds = {}
    flow.clear = clear_and_read_again
    flow._triage_keeps_dropped = True


async def _rewind(consumer: Any, tp: TP) -> None:
    """Seek a partition back to the first record dropped from a stream buffer."""
    offset = consumer._triage_rewinds.pop(tp)
    if tp not in consumer.assignment():
        return  # revoked: its next owner starts from the committed offset
    try:
        await consumer.seek_wait({tp: offset})
    except IllegalStateError:
        return  # revoked meanwhile
    consumer._read_offset[tp] = offset - 1


async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - faust's loop
    _keep_dropped_records(self)
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
            for tp in list(self._triage_rewinds):
                await _rewind(self, tp)
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
                    if tp in self._triage_rewinds:
                        await _rewind(self, tp)
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


async def _perform_seek(self: Any) -> None:  # pragma: no cover - faust's own, but for the seeks
    read_offset = self._read_offset
    committed = await self.seek_to_committed()
    unread = never_committed(committed, self.app.topics.acks_enabled_for)
    if unread and self.app.conf.consumer_auto_offset_reset == "earliest":
        try:
            await self._thread.seek_to_beginning(*unread)
        except IllegalStateError:
            log.warning("partitions %s were revoked before their seek to the beginning", unread)
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


_fetch_max_wait_ms: int | None = None
_create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer


def set_fetch_max_wait_ms(wait_ms: int | None) -> None:
    """The fetch wait of faust consumers created from now on in this process (None: faust's)."""
    global _fetch_max_wait_ms
    _fetch_max_wait_ms = wait_ms


def _worker_consumer(self: Any, transport: Any) -> Any:  # pragma: no cover - faust's own
    consumer = _create_worker_consumer(self, transport)
    if _fetch_max_wait_ms is not None:
        consumer._fetch_max_wait_ms = _fetch_max_wait_ms  # read when the consumer starts
    return consumer


def install() -> None:
    """Make every faust consumer in this process read skipped records again."""
    global _installed
    if not _installed:
        consumer = faust_consumer.Consumer
        consumer._drain_messages = _drain_messages  # type: ignore[method-assign]
        consumer.perform_seek = _perform_seek  # type: ignore[method-assign]
        consumer.ack = _ack  # type: ignore[method-assign]
        consumer._new_offset = _new_offset  # type: ignore[method-assign]
        faust_streams._CStreamIterator = None  # type: ignore[attr-defined]  # acks via Consumer.ack
        AIOKafkaConsumerThread._create_worker_consumer = _worker_consumer  # type: ignore[method-assign]
        _installed = True
