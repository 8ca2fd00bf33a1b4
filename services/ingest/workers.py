"""Parse workers: CPU-heavy parsing of request bodies, in processes of their own, under a deadline.

Parsing a hostile body can take minutes of CPU (the standard e-mail parser builds an object for
every MIME part before any limit can be looked at; JSON validation builds every item of a list).
On the event loop that would stall every request and the liveness probe; in a thread it would
still hold the GIL and could never be stopped. Here each job runs in a :class:`pebble.ProcessPool`
worker:

* the worker stops a job itself once it has used ``cpu_limit_s`` of CPU (a profiling timer)
  and stays available for the next;
* a job still running after ``timeout_s`` of wall-clock time (stuck in C code, where the timer
  cannot reach it, or not using CPU at all) has its worker killed, and the pool starts another.

Jobs are module-level functions, pickled by reference; they must return or raise picklable
values. Bytes arguments over 64 KiB go to the worker in a file under ``/dev/shm``, not through
pebble's task pipe: workers read a task from it whole, under one shared lock, so a 10 MiB body
there would hold up every small job behind it. Workers come from a fork server, not a fork of the
service (a fork of a process with threads could inherit a held lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any, Final, NamedTuple, TypeVar

import structlog
from pebble import ProcessPool

log = structlog.get_logger(__name__)
T = TypeVar("T")

# How much longer than a job's timeout its result may take to arrive before it is given up.
_SETTLE_S: Final = 5.0
# How long stopping the workers may take before they are killed.
_CLOSE_TIMEOUT_S: Final = 10.0
_RETURNED, _RAISED, _OVER_CPU = "returned", "raised", "over_cpu"

# Larger bytes arguments are handed over in shared memory, outside the task pipe, in files that
# mkstemp creates with O_EXCL and mode 0600.
_SHARE_OVER_BYTES = 64 * 1024
_SHM = "/dev/shm"  # noqa: S108
_SHARED_DIR = _SHM if os.path.isdir(_SHM) else None


class WorkerError(Exception):
    """A job did not complete; the request is refused, the service goes on."""


class OverDeadline(WorkerError):
    """The job used its CPU or wall-clock time without finishing."""


class WorkerFailed(WorkerError):
    """The worker died during the job, or its answer could not be read."""


class WorkersBusy(WorkerError):
    """No worker became free in time."""


class _OverCpu(BaseException):
    """Raised inside a job by the CPU timer; a BaseException, so that a job's own
    ``except Exception`` cannot swallow it."""


_armed = False


def _over_cpu(signum: int, frame: object) -> None:
    if _armed:
        raise _OverCpu


def _start_worker(preload: tuple[str, ...]) -> None:
    """A worker's initializer: the CPU timer's handler, then the modules its jobs need."""
    signal.signal(signal.SIGPROF, _over_cpu)
    for module in preload:
        importlib.import_module(module)


class _Shared(NamedTuple):
    """A bytes argument left in a file ``parse-<service pid>-*`` in shared memory."""

    path: str
    length: int


def _share(value: Any, paths: list[str]) -> Any:
    """``value``, or a :class:`_Shared` handle to a copy of it when it is large bytes; the file's
    path is added to ``paths`` as soon as it exists."""
    if type(value) is not bytes or len(value) <= _SHARE_OVER_BYTES:
        return value
    fd, path = tempfile.mkstemp(prefix=f"parse-{os.getpid()}-", dir=_SHARED_DIR)
    paths.append(path)
    with open(fd, "wb") as file:
        file.write(value)
    return _Shared(path, len(value))


def _unshare(value: Any) -> Any:
    """In the worker: the bytes behind a :class:`_Shared` handle (the file stays the service's)."""
    if not isinstance(value, _Shared):
        return value
    with open(value.path, "rb") as file:
        data = file.read(value.length)
    if len(data) != value.length:
        raise OSError(f"{value.path}: {len(data)} bytes of {value.length}")
    return data


def _worker_pid() -> int:
    """A worker's process id, once it has held its worker long enough for each of the others
    to be given a job of their own."""
    time.sleep(0.2)
    return os.getpid()


def _unlink(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _job(
    cpu_limit_s: float, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[str, Any]:
    """``fn(*args, **kwargs)`` in a worker, stopped after ``cpu_limit_s`` of CPU."""
    global _armed
    args = tuple(_unshare(arg) for arg in args)
    kwargs = {name: _unshare(value) for name, value in kwargs.items()}
    try:
        try:
            _armed = True
            signal.setitimer(signal.ITIMER_PROF, cpu_limit_s)
            return _RETURNED, fn(*args, **kwargs)
        except Exception as exc:
            return _RAISED, exc
        finally:
            _armed = False
            signal.setitimer(signal.ITIMER_PROF, 0)
    except _OverCpu:
        return _OVER_CPU, None


class ParseWorkers:
    """A fixed number of parse worker processes, all started with the first job; one job each."""

    def __init__(
        self,
        *,
        processes: int,
        cpu_limit_s: float,
        timeout_s: float,
        preload: tuple[str, ...] = (),
    ) -> None:
        self.cpu_limit_s = cpu_limit_s
        self.timeout_s = timeout_s
        self._processes = processes
        self._preload = preload
        self._free = asyncio.Semaphore(processes)
        self._pool = self._new_pool()
        self._pending: set[Future[tuple[str, Any]]] = set()
        self._jobs: set[asyncio.Future[Any]] = set()
        self._closed = False

    def _new_pool(self) -> ProcessPool:
        return ProcessPool(
            max_workers=self._processes,
            initializer=_start_worker,
            initargs=(self._preload,),
            context=multiprocessing.get_context("forkserver"),
        )

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in a worker: its value, or what it raised; :class:`WorkerError`
        when it ran out of time, its worker died, or no worker became free within the timeout.

        Cancelling the caller does not cut a job short: the worker finishes (or is stopped) and
        only then takes the next job.
        """
        if self._closed:
            raise WorkerFailed("the parse workers are closed")
        try:
            await asyncio.wait_for(self._free.acquire(), self.timeout_s)
        except TimeoutError:
            raise WorkersBusy("no parse worker became free in time") from None
        job = asyncio.ensure_future(self._run(fn, args, kwargs))
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        kind, value = await asyncio.shield(job)
        if kind == _RETURNED:
            result: T = value
            return result
        if kind == _OVER_CPU:
            raise OverDeadline(f"not parsed within {self.cpu_limit_s:g} s of CPU")
        raise value

    async def _run(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[str, Any]:
        shared: list[str] = []
        try:
            args = tuple(_share(arg, shared) for arg in args)
            kwargs = {name: _share(value, shared) for name, value in kwargs.items()}
            future = self._live_pool().schedule(
                _job, args=(self.cpu_limit_s, fn, args, kwargs), timeout=self.timeout_s
            )
            self._pending.add(future)
            future.add_done_callback(self._pending.discard)
            # pebble resolves the future by the timeout; the wait is bounded all the same, so
            # that no request (nor the server's shutdown, which waits for requests) can hang.
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s + _SETTLE_S)
        except TimeoutError:
            log.warning("parse worker stopped: over its deadline")
            raise OverDeadline(f"not parsed within {self.timeout_s:g} s") from None
        except Exception as exc:
            log.warning(
                "parse worker failed", pid=getattr(exc, "pid", None), error=type(exc).__name__
            )
            raise WorkerFailed("the parse worker failed") from None
        finally:
            _unlink(shared)
            self._free.release()

    def _live_pool(self) -> ProcessPool:
        """The pool, replaced when it has broken (a worker could not be started, say)."""
        if not self._closed and not self._pool.active:
            log.error("parse workers restarted: the pool failed")
            broken, self._pool = self._pool, self._new_pool()
            broken.stop()  # type: ignore[no-untyped-call]
            job = asyncio.ensure_future(asyncio.to_thread(broken.join))
            self._jobs.add(job)
            job.add_done_callback(self._jobs.discard)
        return self._pool

    async def warm_up(self) -> set[int]:
        """Start every worker now rather than with the first bodies that need them, so that a
        hostile body arriving early cannot hold up others while a second worker starts. Returns
        the workers' process ids."""
        started = await asyncio.gather(*(self.run(_worker_pid) for _ in range(self._processes)))
        return set(started)

    @property
    def pids(self) -> list[int]:
        """The process ids of the running workers (pebble's own table of them)."""
        return list(self._pool._pool_manager.worker_manager.workers)

    async def close(self) -> None:
        """Stop every worker; jobs in progress end with :class:`WorkerFailed`."""
        self._closed = True
        pids = self.pids
        # pebble's stop and join have no bound (a stop can wait for the task pipe, a join for
        # its manager threads); a shutdown must not hang on them, nor leave a thread the
        # interpreter would wait for at exit.
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()

        def join() -> None:
            self._pool.stop()  # type: ignore[no-untyped-call]
            self._pool.join()
            with contextlib.suppress(RuntimeError):  # the loop may be gone by then
                loop.call_soon_threadsafe(stopped.set)

        threading.Thread(target=join, name="parse-workers-join", daemon=True).start()
        try:
            await asyncio.wait_for(stopped.wait(), _CLOSE_TIMEOUT_S)
        except TimeoutError:
            log.error("parse workers did not stop in time; killing them", workers=len(pids))
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        for future in list(self._pending):
            with contextlib.suppress(InvalidStateError):
                future.set_exception(WorkerFailed("the parse workers are closed"))
        if self._jobs:
            await asyncio.wait(list(self._jobs), timeout=5)
