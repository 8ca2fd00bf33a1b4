"""faust tables whose changelog writes a worker waits for before it acknowledges its input.

A faust table sends each change to its changelog topic through the producer's buffer and does
not wait. A commit flushes that buffer only while it makes progress (faust gives up after
0.1 s without one, which a busy worker reaches with hundreds of changes pending), so a commit
can pass input whose changes are still in the buffer; a worker killed then restarts from
tables that lack them, although the case events they stand for were published. A worker that
awaits :meth:`AcknowledgedTable.acknowledged` before acknowledging its input has every change
it made on the broker first.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import structlog
from faust.types import FutureMessage

from services.common.streams import deliveries_settled

log = structlog.get_logger(__name__)


class AcknowledgedTable(faust.Table[Any, Any]):
    """A faust table that remembers its changelog writes until the broker acknowledged them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending_writes: list[tuple[int | None, Any, FutureMessage]] = []

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: Any = None,
        value_serializer: Any = None,
    ) -> FutureMessage:
        future = super().send_changelog(partition, key, value, key_serializer, value_serializer)
        self._pending_writes.append((future.message.partition, key, future))
        return future

    async def acknowledged(self, *, retry_s: float = 1.0) -> None:
        """Return once the broker has acknowledged every change written so far.

        A change whose delivery failed for a passing reason is written again, with the key's
        value as it is now (a later change of the key would have been sent after it anyway);
        a change the broker refuses outright raises its error.
        """
        while self._pending_writes:
            pending, self._pending_writes = self._pending_writes, []
            again, refused = await deliveries_settled([future for _, _, future in pending])
            if refused:
                raise next(iter(refused.values()))
            if not again:
                continue
            log.warning(
                "table changes not acknowledged by the broker; writing them again",
                table=self.name,
                count=len(again),
            )
            await asyncio.sleep(retry_s)
            for partition, key, _ in (pending[n] for n in again):
                if key in self.data:
                    self.send_changelog(partition, key, self.data[key])
                else:
                    self.send_changelog(partition, key, None, value_serializer="raw")


def acknowledged_table(app: faust.App, name: str, **options: Any) -> AcknowledgedTable:
    """Declare an :class:`AcknowledgedTable` on ``app``, as ``app.Table`` declares a table."""
    table = AcknowledgedTable(app, name=name, beacon=app.tables.beacon, **options)
    app.tables.add(table)
    return table
