"""Stopping the publisher ends its broker watch even when a cancellation is lost on the way."""

from __future__ import annotations

import asyncio

from services.common.kafka import KafkaSettings
from services.common.topics import feedback_received
from services.ingest.publisher import Publisher


class SwallowsOneCancel(Publisher):
    """A check that loses the first cancellation, as ``asyncio.wait_for`` does on Python 3.11 when
    the awaited call completes at the moment it is cancelled."""

    swallowed = 0

    async def _check(self) -> None:
        try:
            await super()._check()
        except asyncio.CancelledError:
            if self.swallowed:
                raise
            self.swallowed += 1


async def test_stop_ends_the_watch_even_when_a_cancellation_is_swallowed(
    kafka: KafkaSettings,
) -> None:
    publisher = SwallowsOneCancel(kafka, feedback_received, send_timeout_s=5, check_interval_s=0.05)
    await publisher.start()
    assert await publisher.wait_ready(15)
    loop = asyncio.get_running_loop()
    # Stop while a check is in progress, so that the cancellation lands inside it.
    for _ in range(200):
        publisher._recheck.set()
        await asyncio.sleep(0)
        started = loop.time()
        await asyncio.wait({asyncio.ensure_future(publisher.stop())}, timeout=10)
        assert loop.time() - started < 5, "stop hung on the watch"
        if publisher.swallowed:
            break
        await publisher.start()
        assert await publisher.wait_ready(15)
    assert publisher.swallowed == 1
    assert publisher._monitor is None
