"""Kafka connection settings and the few admin operations every service needs."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any, Literal

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.errors import ConfigurationError, TriageError
from services.common.topics import TopicSpec

log = structlog.get_logger(__name__)

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
EMBEDDED_FETCH_MAX_WAIT_MS = 100
# The URL scheme of the faust transport with the offset fixes (services/common/faust_app.py).
FAUST_SCHEME = "triage-kafka"


class KafkaSettings(BaseSettings):
    """How every service reaches Kafka (environment prefix ``TRIAGE_KAFKA_``)."""

    model_config = SettingsConfigDict(env_prefix="TRIAGE_KAFKA_", frozen=True, extra="ignore")

    bootstrap: str = Field(
        default=DEFAULT_BOOTSTRAP,
        description="Comma-separated host:port list of brokers (default: the embedded broker).",
    )
    topic_prefix: str = Field(
        default="",
        max_length=100,
        pattern=r"^[A-Za-z0-9._-]*$",
        description="Prefix for every topic name, to keep deployments apart on one cluster.",
    )
    profile: Literal["embedded", "kafka"] = Field(
        default="embedded",
        description=(
            "'embedded' tunes stream workers for the embedded broker (short group timeouts, one "
            "record per produce batch); 'kafka' keeps the client defaults for Apache Kafka."
        ),
    )
    idempotence: Literal["auto", "on", "off"] = Field(
        default="auto",
        description=(
            "Idempotent producer. 'auto' turns it on when the broker supports it (Kafka) and "
            "off when it does not (the embedded broker)."
        ),
    )
    fetch_max_wait_ms: int | None = Field(
        default=None,
        ge=10,
        le=30_000,
        description=(
            "Longest a stream worker's fetch waits for new records. Default: 100 on the "
            "'embedded' profile (the embedded broker holds a fetch well past a record's "
            "arrival, which each hop of the pipeline would add), faust's 1500 on 'kafka' "
            "(Kafka answers as soon as a record arrives)."
        ),
    )
    replication_factor: int = Field(
        default=1, ge=1, le=7, description="Replication factor of topics the services create."
    )
    create_topics: bool = Field(
        default=True, description="Create missing topics at start (off when an operator owns them)."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="Kafka security protocol."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="PLAIN", description="SASL mechanism when the protocol is SASL_*."
    )
    sasl_username: str | None = Field(default=None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password.")
    ssl_cafile: str | None = Field(default=None, description="CA bundle for SSL connections.")

    @field_validator("bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        servers = [part.strip() for part in value.split(",") if part.strip()]
        if not servers:
            raise ValueError("at least one host:port is required")
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"'{server}' is not host:port")
        return ",".join(servers)

    def topic(self, spec: TopicSpec) -> str:
        """The full name of a topic in this deployment."""
        return spec.full_name(self.topic_prefix)

    def faust_broker_url(self) -> str:
        """The broker URL list in faust's form, naming the transport with the offset fixes."""
        return ";".join(f"{FAUST_SCHEME}://{server}" for server in self.bootstrap.split(","))

    def worker_fetch_max_wait_ms(self) -> int | None:
        """The fetch wait of stream workers (None: faust's own)."""
        if self.fetch_max_wait_ms is not None:
            return self.fetch_max_wait_ms
        return EMBEDDED_FETCH_MAX_WAIT_MS if self.profile == "embedded" else None

    def faust_options(self) -> dict[str, Any]:
        """The options of a ``TriageApp`` (services/common/faust_app.py) for this cluster."""
        options: dict[str, Any] = {
            "broker": self.faust_broker_url(),
            "fetch_max_wait_ms": self.worker_fetch_max_wait_ms(),
            "topic_replication_factor": self.replication_factor,
            "topic_allow_declare": self.create_topics,
        }
        if self.profile == "embedded":
            # The embedded broker holds each JoinGroup for half the session timeout, and reports
            # wrong end offsets for multi-record batches (which breaks table recovery).
            options.update(
                broker_session_timeout=3.0,
                broker_heartbeat_interval=0.5,
                broker_rebalance_timeout=3.0,
                producer_max_batch_size=16,
            )
        if self.security_protocol != "PLAINTEXT":
            options["broker_credentials"] = self._faust_credentials()
        return options

    def _faust_credentials(self) -> Any:
        import faust

        context = (
            ssl.create_default_context(cafile=self.ssl_cafile)
            if self.security_protocol in ("SSL", "SASL_SSL")
            else None
        )
        if self.security_protocol == "SSL":
            return faust.SSLCredentials(context)
        if not self.sasl_username or self.sasl_password is None:
            raise ConfigurationError("SASL needs TRIAGE_KAFKA_SASL_USERNAME and _PASSWORD")
        return faust.SASLCredentials(
            username=self.sasl_username,
            password=self.sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=self.sasl_mechanism,
        )

    def client_kwargs(self) -> dict[str, Any]:
        """Connection arguments shared by aiokafka producers, consumers and admin clients."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            kwargs["ssl_context"] = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.security_protocol.startswith("SASL"):
            if not self.sasl_username or self.sasl_password is None:
                raise ConfigurationError(
                    "TRIAGE_KAFKA_SASL_USERNAME and TRIAGE_KAFKA_SASL_PASSWORD are required "
                    f"with TRIAGE_KAFKA_SECURITY_PROTOCOL={self.security_protocol}"
                )
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password.get_secret_value()
        return kwargs


async def ensure_topics(
    settings: KafkaSettings, specs: Iterable[TopicSpec], *, timeout_s: float = 10.0
) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(
        **settings.client_kwargs(), request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        existing = set(await asyncio.wait_for(admin.list_topics(), timeout_s))
        missing = [
            NewTopic(
                name=settings.topic(spec),
                num_partitions=spec.partitions,
                replication_factor=settings.replication_factor,
                topic_configs={"retention.ms": str(spec.retention_ms)},
            )
            for spec in specs
            if settings.topic(spec) not in existing
        ]
        if missing:
            await asyncio.wait_for(admin.create_topics(missing), timeout_s)
            log.info("topics created", topics=[t.name for t in missing])
        return [t.name for t in missing]
    finally:
        await admin.close()


async def existing_topics(settings: KafkaSettings, *, timeout_s: float = 5.0) -> set[str]:
    """The topic names the cluster has now; raises when it cannot be reached in time."""
    admin = AIOKafkaAdminClient(
        **settings.client_kwargs(), request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        return set(await asyncio.wait_for(admin.list_topics(), timeout_s))
    finally:
        await admin.close()


async def partition_counts(
    settings: KafkaSettings, specs: Iterable[TopicSpec], *, timeout_s: float = 10.0
) -> dict[str, int]:
    """How many partitions each of these topics has on the cluster (absent topics left out)."""
    admin = AIOKafkaAdminClient(
        **settings.client_kwargs(), request_timeout_ms=int(timeout_s * 1000)
    )
    names = [settings.topic(spec) for spec in specs]
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        described = await asyncio.wait_for(admin.describe_topics(names), timeout_s)
    finally:
        await admin.close()
    counts = {}
    for topic in described:
        if topic.get("error_code", 0) == 0 and topic.get("partitions"):
            counts[topic["topic"]] = len(topic["partitions"])
    return counts


class BrokerUnreachable(TriageError):
    """The broker did not answer a reader in time."""


@asynccontextmanager
async def topic_reader(
    kafka: KafkaSettings, topic: str, *, timeout_s: float
) -> AsyncIterator[tuple[AIOKafkaConsumer, list[TopicPartition]]]:
    """A consumer outside any consumer group, assigned every partition of ``topic`` (none when
    the topic does not exist), for commands that read a topic once (to its end offsets or a
    period) without moving any service's committed position; stopped on leaving."""
    consumer = AIOKafkaConsumer(
        **kafka.client_kwargs(),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        await asyncio.wait_for(consumer.start(), timeout_s)
    except Exception as exc:
        await consumer.stop()
        raise BrokerUnreachable(f"cannot reach the broker at {kafka.bootstrap}: {exc!r}") from exc
    try:
        found = consumer.partitions_for_topic(topic)
        if not found:
            await consumer._client.force_metadata_update()  # the client may not know it yet
            found = consumer.partitions_for_topic(topic)
        partitions = [TopicPartition(topic, p) for p in sorted(found or ())]
        if partitions:
            consumer.assign(partitions)
        yield consumer, partitions
    finally:
        await consumer.stop()


async def topic_partitions(
    consumer: AIOKafkaConsumer, topic: str, *, timeout_s: float = 30.0
) -> list[TopicPartition]:
    """The partitions of a topic, once the cluster's metadata has it (a worker that assigns
    partitions itself waits for a topic another service or the operator creates)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        if topic in await consumer.topics():
            found = consumer.partitions_for_topic(topic)
            if found:
                return [TopicPartition(topic, p) for p in sorted(found)]
        if loop.time() >= deadline:
            raise TimeoutError(f"topic {topic} does not exist (create it, see deploy/topics.sh)")
        await asyncio.sleep(0.5)
