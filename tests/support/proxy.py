"""A broker outage that keeps the broker's data: clients reach an embedded broker through a TCP
proxy that can drop every connection and refuse new ones for a while, as a restarting Kafka
broker does (the embedded broker keeps everything in memory, so stopping it loses the topics;
behind the proxy it keeps running)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from pathlib import Path

from services.common.broker import broker_binary, free_port, wait_for_port

HOST = "127.0.0.1"


class TcpProxy:
    """Forwards ``port`` to ``target_port``. :meth:`cut` resets every connection and closes the
    port (connections are refused); :meth:`restore` listens on the same port again."""

    def __init__(self, target_port: int, *, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def bootstrap(self) -> str:
        """The address clients connect to."""
        return f"{HOST}:{self.port}"

    @property
    def up(self) -> bool:
        """True while connections are accepted."""
        return self._server is not None

    async def start(self) -> None:
        """Accept connections (again)."""
        if self._server is None:
            self._server = await asyncio.start_server(
                self._connect, HOST, self.port, reuse_address=True
            )

    async def restore(self) -> None:
        """End the outage."""
        await self.start()

    async def cut(self) -> None:
        """Begin an outage: refuse new connections and reset every open one."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)

    async def stop(self) -> None:
        """Close everything."""
        await self.cut()

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        pumps = [
            asyncio.create_task(self._pump(reader, upstream_writer)),
            asyncio.create_task(self._pump(upstream_reader, writer)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
                self._tasks.discard(task)
            for end in (writer, upstream_writer):
                self._writers.discard(end)
                end.transport.abort()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()


class ProxiedBroker:
    """An embedded broker that advertises the proxy's address, so every client connection,
    bootstrap and metadata alike, passes through the proxy."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.proxy = TcpProxy(self.port)
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """The address clients use (the proxy's)."""
        return self.proxy.bootstrap

    async def start(self) -> None:
        """Start the broker and the proxy."""
        url = f"tcp://{HOST}:{self.port}"
        command = [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            f"tcp://{self.proxy.bootstrap}",
            "--storage-engine",
            "memory://tansu/",
        ]
        env = {**os.environ, "RUST_LOG": os.environ.get("TRIAGE_BROKER_LOG", "warn")}
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        if not wait_for_port(HOST, self.port, timeout_s=15):
            self.stop_broker()
            raise RuntimeError("the embedded broker did not start")
        await self.proxy.start()

    def stop_broker(self) -> None:
        """Stop the broker process this object started."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    async def stop(self) -> None:
        """Stop the proxy and the broker."""
        await self.proxy.stop()
        self.stop_broker()
