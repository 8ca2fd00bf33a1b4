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
they are dropped, and the fetch loop seeks back to the first of them. Only back: at a
rebalance the buffers are emptied when it starts, and the seek to the committed offsets at its
end already reads those records again, together with any record the agent was still processing
meanwhile (its acknowledgement did not count, below). Seeking forward to the first emptied
record then would skip that one, and hold every later commit of the partition before it.

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

This module holds those decisions as pure functions; :mod:`services.common.faust_app` applies
them through faust's extension points (a transport with its own consumer, and an app class).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from faust.types import TP, Message


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


def read_again_from(read_offset: int | None, dropped: int) -> int | None:
    """The offset to seek a partition back to, given its read offset (the last delivered, or
    None: nothing delivered since the seek to the committed offsets) and the first record
    dropped from a stream buffer; None when the read position is already at or before that
    record (a seek to the committed offsets came between), where a seek would move it forward,
    past records that still have to be read again."""
    if read_offset is None or read_offset < dropped:
        return None
    return dropped


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
