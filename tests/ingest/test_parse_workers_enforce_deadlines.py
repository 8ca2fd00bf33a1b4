"""Parse workers stop a job at its CPU deadline and keep serving; a job stuck where the CPU timer
cannot reach it (in C code, or not using CPU at all) has its worker killed at the wall-clock
deadline and replaced; what a job returns or raises comes back as it is."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator

import pytest

from services.ingest.workers import OverDeadline, ParseWorkers, WorkerFailed, WorkersBusy

pytestmark = pytest.mark.timeout(60)


def spin(seconds: float) -> int:
    """Busy Python code for ``seconds`` of wall-clock time."""
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += 1
    return n


def pid() -> int:
    return os.getpid()


def fail(message: str) -> None:
    raise ValueError(message)


@pytest.fixture
async def workers() -> AsyncIterator[ParseWorkers]:
    pool = ParseWorkers(processes=1, cpu_limit_s=0.3, timeout_s=1.5)
    try:
        yield pool
    finally:
        await pool.close()


async def test_a_job_over_its_cpu_deadline_is_stopped_and_the_worker_kept(
    workers: ParseWorkers,
) -> None:
    first = await workers.run(pid)
    started = time.perf_counter()
    with pytest.raises(OverDeadline, match="CPU"):
        await workers.run(spin, 30.0)
    assert time.perf_counter() - started < 1.5
    assert await workers.run(pid) == first, "the same worker goes on"


async def test_a_job_past_the_wall_clock_deadline_has_its_worker_replaced(
    workers: ParseWorkers,
) -> None:
    first = await workers.run(pid)
    started = time.perf_counter()
    with pytest.raises(OverDeadline, match=r"within 1\.5 s"):
        await workers.run(time.sleep, 30.0)  # no CPU: only the wall clock sees it
    assert time.perf_counter() - started < 3
    assert await workers.run(pid) != first, "a new worker took over"
    assert len(workers.pids) == 1


async def test_values_and_exceptions_come_back(workers: ParseWorkers) -> None:
    assert await workers.run(spin, 0.0) >= 0
    with pytest.raises(ValueError, match="refused"):
        await workers.run(fail, "refused")


async def test_no_free_worker_in_time_is_busy() -> None:
    workers = ParseWorkers(processes=1, cpu_limit_s=0.3, timeout_s=1.0)
    try:
        await workers.run(pid)
        # Two jobs of 0.7 s each keep the only worker until 1.4 s; a third waits 1 s at most.
        queued = [asyncio.create_task(workers.run(time.sleep, 0.7)) for _ in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(WorkersBusy):
            await workers.run(pid)
        await asyncio.gather(*queued)
        assert await workers.run(spin, 0.0) >= 0
    finally:
        await workers.close()


async def test_a_cancelled_caller_leaves_the_pool_usable(workers: ParseWorkers) -> None:
    job = asyncio.create_task(workers.run(spin, 0.2))
    await asyncio.sleep(0.05)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert await workers.run(spin, 0.0) >= 0


def shared_blocks(owner: int) -> set[str]:
    """The shared-memory files held now by the service with process id ``owner``."""
    return {name for name in os.listdir("/dev/shm") if name.startswith(f"parse-{owner}-")}


def look(body: bytes, owner: int) -> tuple[str, set[str]]:
    """In the worker: the body's digest, and the shared-memory files of the service."""
    return hashlib.sha256(body).hexdigest(), shared_blocks(owner)


def sleep_on(body: bytes, seconds: float) -> int:
    time.sleep(seconds)
    return len(body)


def spin_on(body: bytes, seconds: float) -> int:
    return spin(seconds) + len(body)


def fail_on(body: bytes) -> None:
    raise ValueError(f"refused {len(body)} bytes")


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm")
async def test_large_bodies_go_through_shared_memory_and_no_block_outlives_its_job() -> None:
    me, large, small = os.getpid(), os.urandom(1_048_576), os.urandom(1000)
    digest = hashlib.sha256(large).hexdigest()
    before = shared_blocks(me)
    workers = ParseWorkers(processes=1, cpu_limit_s=0.3, timeout_s=1.5)
    try:
        seen, blocks = await workers.run(look, large, me)
        assert seen == digest
        assert len(blocks - before) == 1
        seen, blocks = await workers.run(look, body=large, owner=me)
        assert seen == digest
        assert len(blocks - before) == 1
        seen, blocks = await workers.run(look, small, me)
        assert seen == hashlib.sha256(small).hexdigest()
        assert blocks == before
        with pytest.raises(ValueError, match="refused 1048576 bytes"):
            await workers.run(fail_on, large)
        with pytest.raises(OverDeadline, match="CPU"):
            await workers.run(spin_on, large, 30.0)
        with pytest.raises(OverDeadline, match=r"within 1\.5 s"):
            await workers.run(sleep_on, large, 30.0)
        running = asyncio.create_task(workers.run(sleep_on, large, 0.3))
        waiting = asyncio.create_task(workers.run(sleep_on, large, 0.3))
        await asyncio.sleep(0.1)
        assert len(shared_blocks(me) - before) == 1, "a job waiting for a worker has no block"
        for task in (running, waiting):
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        # The next job starts once the cancelled one has ended.
        assert (await workers.run(look, large, me))[0] == digest
        assert shared_blocks(me) == before
        in_progress = asyncio.create_task(workers.run(sleep_on, large, 30.0))
        await asyncio.sleep(0.2)
        assert len(shared_blocks(me) - before) == 1
    finally:
        await workers.close()
    with pytest.raises(WorkerFailed):
        await in_progress
    assert shared_blocks(me) == before, "a block outlived its job"


def _gone(pid: int) -> bool:
    """Whether a process has exited (a zombie waiting for its parent counts as gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            return any(line.startswith("State:\tZ") for line in status)
    except (FileNotFoundError, ProcessLookupError):
        return True


async def test_stopping_never_hangs_on_a_pool_that_does_not_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    from services.ingest import workers as module

    pool = ParseWorkers(processes=2, cpu_limit_s=0.3, timeout_s=1.5)
    pids = await pool.warm_up()
    assert len(pids) == 2
    monkeypatch.setattr(module, "_CLOSE_TIMEOUT_S", 0.5)
    # A pool whose own join never returns (its manager threads blocked).
    monkeypatch.setattr(pool._pool, "join", lambda timeout=None: threading.Event().wait())
    started = time.monotonic()
    await pool.close()
    assert time.monotonic() - started < 3
    deadline = time.monotonic() + 5
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert all(_gone(pid) for pid in pids)
