"""Remembers which source events were accepted, so a repeat is answered without a second event.

Concurrent requests for the same source event share one outcome: the first produces, the others
wait for it. Entries expire after a TTL and the oldest are dropped beyond a bound. The memory is
per process; across replicas and restarts the deterministic event id lets consumers drop repeats.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Outcome:
    """The event id of a source event and whether this call was a repeat."""

    event_id: uuid.UUID
    duplicate: bool


class AcceptedEvents:
    """A bounded, expiring map of accepted source events, safe for concurrent use."""

    def __init__(self, *, ttl_s: float, max_entries: int) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._accepted: OrderedDict[str, tuple[uuid.UUID, float]] = OrderedDict()
        self._in_flight: dict[str, asyncio.Future[uuid.UUID]] = {}

    def __len__(self) -> int:
        return len(self._accepted)

    def _lookup(self, key: str, now: float) -> uuid.UUID | None:
        entry = self._accepted.get(key)
        if entry is None:
            return None
        event_id, accepted_at = entry
        if now - accepted_at > self._ttl_s:
            del self._accepted[key]
            return None
        return event_id

    def _remember(self, key: str, event_id: uuid.UUID, now: float) -> None:
        self._accepted[key] = (event_id, now)
        self._accepted.move_to_end(key)
        while len(self._accepted) > self._max_entries:
            self._accepted.popitem(last=False)
        while self._accepted:
            _, accepted_at = next(iter(self._accepted.values()))
            if now - accepted_at <= self._ttl_s:
                break
            self._accepted.popitem(last=False)

    def seen(self, key: str) -> bool:
        """True when ``key`` was accepted within the TTL or is being accepted now."""
        return key in self._in_flight or self._lookup(key, time.monotonic()) is not None

    def remember(self, key: str, event_id: uuid.UUID) -> None:
        """Record ``key`` as accepted (for events published outside :meth:`accept_once`)."""
        self._remember(key, event_id, time.monotonic())

    async def accept_once(
        self, key: str, event_id: uuid.UUID, publish: Callable[[], Awaitable[None]]
    ) -> Outcome:
        """Run ``publish`` unless ``key`` was accepted already; a failed publish is forgotten."""
        known = self._lookup(key, time.monotonic())
        if known is not None:
            return Outcome(known, duplicate=True)
        pending = self._in_flight.get(key)
        if pending is not None:
            return Outcome(await asyncio.shield(pending), duplicate=True)
        future: asyncio.Future[uuid.UUID] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            await publish()
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, nobody else must
            raise
        except BaseException:
            future.cancel()
            raise
        else:
            self._remember(key, event_id, time.monotonic())
            future.set_result(event_id)
        finally:
            del self._in_flight[key]
        return Outcome(event_id, duplicate=False)
