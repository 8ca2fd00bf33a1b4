"""When the router's clock sends a tick to the inbox.

A tick is applied by whichever worker holds the inbox then, so the worker that sent it cannot
count on seeing it applied: applying it may fail, or another worker may take the inbox over
first. A tick not applied within ``resend_after_s`` is therefore sent again (a second tick
finds nothing left to do, so repeats are harmless), and a heartbeat tick goes out while
nothing is due, so that "no tick applied lately" means the clock is stuck, not idle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass
class TickClock:
    """The clock's memory of its last tick, in monotonic seconds."""

    resend_after_s: float
    heartbeat_s: float
    in_flight_since: float | None = None
    last_sent: float | None = None
    last_applied: float | None = None

    def should_send(self, *, next_due: datetime | None, now: datetime, monotonic: float) -> bool:
        """Whether to send a tick now: work is due or a heartbeat is, and no recent tick is
        still on its way."""
        in_flight = self.in_flight_since
        if in_flight is not None and monotonic - in_flight < self.resend_after_s:
            return False
        if next_due is not None and next_due <= now:
            return True
        return self.last_sent is None or monotonic - self.last_sent >= self.heartbeat_s

    def sent(self, monotonic: float) -> None:
        """A tick was handed to the inbox."""
        self.in_flight_since = monotonic
        self.last_sent = monotonic

    def applied(self, monotonic: float) -> None:
        """This worker applied a tick (its own or another worker's)."""
        self.in_flight_since = None
        self.last_applied = monotonic

    def failed(self) -> None:
        """Sending or applying a tick failed, or the state was reloaded: send afresh."""
        self.in_flight_since = None
