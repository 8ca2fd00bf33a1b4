"""The ``triage`` command: one subcommand per service, plus tools."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from types import FrameType

import click
from pydantic import ValidationError
from pydantic_settings import SettingsError

from services.common.broker import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    BrokerError,
    EmbeddedBroker,
    port_in_use,
)


def _settings_error(exc: ValidationError | SettingsError) -> click.ClickException:
    if isinstance(exc, SettingsError):
        # e.g. 'error parsing value for field "api_keys" from source "EnvSettingsSource"'
        return click.ClickException(f"invalid configuration: {exc} (check the JSON syntax)")
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in err["loc"]) or "settings"
        lines.append(f"  {where}: {err['msg']}")
    return click.ClickException("invalid configuration:\n" + "\n".join(lines))


@click.group()
@click.version_option(package_name="complaint-triage")
def main() -> None:
    """Streaming complaint triage: ingest, classify and route customer feedback."""


@main.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Interface to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535))
def broker(host: str, port: int) -> None:
    """Run the embedded Kafka-compatible broker (in memory) in the foreground."""
    embedded = EmbeddedBroker(host=host, port=port, log_path=None)
    try:
        embedded.start()
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"embedded broker listening on {embedded.bootstrap} (pid {embedded.pid})")
    click.echo(f"clients: TRIAGE_KAFKA_BOOTSTRAP={embedded.bootstrap}; Ctrl-C stops it")
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        embedded.terminate()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = embedded.wait()
    embedded.stop()
    if stopping:
        click.echo("embedded broker stopped")
        return
    raise click.ClickException(f"the embedded broker exited unexpectedly (code {code})")


@main.command()
@click.option("--host", default=None, help="Interface to bind (default TRIAGE_INGEST_HOST).")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="HTTP port [8080].")
def ingest(host: str | None, port: int | None) -> None:
    """Run the ingest HTTP API."""
    import uvicorn

    from services.common.kafka import KafkaSettings
    from services.common.logging import configure_logging
    from services.ingest.app import create_app
    from services.ingest.settings import IngestSettings

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    try:
        settings = IngestSettings(**overrides)  # type: ignore[arg-type]
        kafka = KafkaSettings()
    except (ValidationError, SettingsError) as exc:
        raise _settings_error(exc) from exc
    if port_in_use(settings.host, settings.port):
        raise click.ClickException(
            f"port {settings.port} on {settings.host} is already in use; choose another with --port"
        )
    configure_logging(level=settings.log_level, fmt=settings.effective_log_format)
    app = create_app(settings, kafka)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_config=None,
        server_header=False,
    )


@main.command()
@click.argument("platform")
def keygen(platform: str) -> None:
    """Make a new API key for PLATFORM and print it with the hash to configure."""
    from services.ingest.auth import generate_key, hash_key
    from services.ingest.settings import IngestSettings

    key = generate_key()
    digest = hash_key(key)
    try:
        IngestSettings(api_keys={platform: digest})
    except (ValidationError, SettingsError) as exc:
        raise _settings_error(exc) from exc
    click.echo(f"API key for {platform} (give it to the platform; it is not stored): {key}")
    click.echo(f'configure: TRIAGE_INGEST_API_KEYS=\'{{"{platform}": "{digest}"}}\'')


@dataclass
class _Child:
    name: str
    argv: list[str]
    ready_url: str | None
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    env: dict[str, str] = field(default_factory=dict)


def _wait_ready(url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback URL
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


@main.command()
@click.option("--broker-port", default=DEFAULT_PORT, show_default=True, type=int)
@click.option("--ingest-port", default=8080, show_default=True, type=int)
def up(broker_port: int, ingest_port: int) -> None:
    """Run the embedded broker and every service; Ctrl-C stops them all."""
    from services.ingest.settings import DEV_API_KEY, IngestSettings

    for name, port in (("broker", broker_port), ("ingest", ingest_port)):
        if port_in_use(DEFAULT_HOST, port):
            raise click.ClickException(f"{name} port {port} is already in use")
    try:
        ingest_settings = IngestSettings()
    except (ValidationError, SettingsError) as exc:
        raise _settings_error(exc) from exc
    embedded = EmbeddedBroker(host=DEFAULT_HOST, port=broker_port)
    try:
        embedded.start()
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    env = {**os.environ, "TRIAGE_KAFKA_BOOTSTRAP": embedded.bootstrap}
    base = f"http://{DEFAULT_HOST}:{ingest_port}"
    children = [
        _Child(
            name="ingest",
            argv=[sys.executable, "-m", "services.cli", "ingest", "--port", str(ingest_port)],
            ready_url=f"{base}/readyz",
            env=env,
        )
    ]
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    def launch(child: _Child) -> None:
        child.process = subprocess.Popen(  # noqa: S603 - own argv
            child.argv, env=child.env, start_new_session=True
        )

    try:
        for child in children:
            launch(child)
            if child.ready_url and not _wait_ready(child.ready_url, 60):
                raise click.ClickException(f"{child.name} did not become ready")
        click.echo("")
        click.echo(f"  broker       {embedded.bootstrap} (embedded, in memory)")
        click.echo(f"  ingest API   {base}/v1/feedback   docs: {base}/docs")
        click.echo(f"  metrics      {base}/metrics")
        if ingest_settings.development_key_enabled:
            click.echo(f"  API key      Authorization: Bearer {DEV_API_KEY}  (development only)")
        click.echo("  Ctrl-C stops everything.\n")
        while not stopping:
            time.sleep(0.5)
            if not embedded.running() and not stopping:
                click.echo("broker exited; restarting it (its in-memory data is lost)", err=True)
                embedded.start()
            for child in children:
                if child.process is not None and child.process.poll() is not None and not stopping:
                    child.restarts += 1
                    click.echo(
                        f"{child.name} exited with code {child.process.returncode}; "
                        f"restarting (restart {child.restarts})",
                        err=True,
                    )
                    time.sleep(min(5, child.restarts))
                    launch(child)
    finally:
        for child in children:
            process = child.process
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGINT)
        for child in children:
            process = child.process
            if process is not None:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        embedded.stop()
        click.echo("stopped")


if __name__ == "__main__":
    main()
