"""A worker and its HTTP server (health, metrics, API) in one event loop, stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

import structlog
import uvicorn

log = structlog.get_logger(__name__)

# How long the HTTP server may take to finish its requests once the worker has stopped.
HTTP_STOP_TIMEOUT_S = 5.0


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside a worker's loop: the worker owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def embedded_server(app: Any, *, host: str, port: int) -> EmbeddedServer:
    """A uvicorn server for ``app``: no access log, no server header, no lifespan."""
    return EmbeddedServer(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            access_log=False,
            log_config=None,
            server_header=False,
            lifespan="off",
        )
    )


async def run_with_http(
    name: str,
    app: Any,
    *,
    host: str,
    port: int,
    work: Callable[[], Coroutine[Any, Any, None]],
    stop_work: Callable[[], Awaitable[None]],
    stop: asyncio.Event | None = None,
) -> None:
    """Run ``work()`` and serve ``app`` until ``stop`` is set (or SIGINT/SIGTERM when no event
    is given) or either ends; then cancel the work, ``stop_work()`` and stop the server. An
    unexpected error of the work or the server is raised after that clean-up, so a supervisor
    restarts the process."""
    server = embedded_server(app, host=host, port=port)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    http = asyncio.create_task(server.serve(), name=f"{name}-http")
    worker = asyncio.create_task(work(), name=f"{name}-work")
    stopped = asyncio.create_task(stop.wait(), name=f"{name}-stop")
    log.info(f"{name} listening", host=host, port=port)
    try:
        done, _ = await asyncio.wait({http, worker, stopped}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = None if task is stopped or task.cancelled() else task.exception()
            if error is not None:
                raise error
    finally:
        stopped.cancel()
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await stop_work()
        server.should_exit = True
        with contextlib.suppress(asyncio.TimeoutError):
            served = asyncio.gather(http, return_exceptions=True)
            await asyncio.wait_for(served, HTTP_STOP_TIMEOUT_S)
        log.info(f"{name} stopped")
