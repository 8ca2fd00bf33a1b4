"""Prometheus metrics of the ingest service, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.common.observability import add_runtime_collectors

CHANNEL_LABELS = ("email", "chat", "social", "phone", "web", "survey", "batch", "unknown")


class IngestMetrics:
    """The service's metrics; label values come from bounded sets only."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        add_runtime_collectors(self.registry)
        self.requests = Counter(
            "triage_ingest_requests_total",
            "Feedback requests answered, by channel and HTTP status code.",
            ["channel", "status"],
            registry=self.registry,
        )
        self.events = Counter(
            "triage_ingest_events_total",
            "Events by outcome: accepted, duplicate, invalid, unavailable.",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "triage_ingest_duplicates_total",
            "Repeated source events answered without producing a second event.",
            ["channel"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "triage_ingest_auth_failures_total",
            "Requests refused with 401, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "triage_ingest_rate_limited_total",
            "Requests refused with 429 because the platform's rate limit was exceeded.",
            ["platform"],
            registry=self.registry,
        )
        self.parse_refusals = Counter(
            "triage_ingest_parse_refusals_total",
            "Bodies not parsed: over_deadline (refused with 422) or unavailable (no parse worker "
            "could take it; 503).",
            ["reason"],
            registry=self.registry,
        )
        self.produce_seconds = Histogram(
            "triage_ingest_produce_duration_seconds",
            "Time from sending records to the broker's acknowledgement.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.payload_bytes = Histogram(
            "triage_ingest_payload_bytes",
            "Size of request bodies received.",
            ["channel"],
            buckets=(256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216),
            registry=self.registry,
        )
        self.broker_up = Gauge(
            "triage_ingest_broker_up",
            "1 when the broker is reachable and the topic exists, else 0.",
            registry=self.registry,
        )

    def channel_label(self, channel: str | None) -> str:
        """A bounded label value for a channel name."""
        return channel if channel in CHANNEL_LABELS else "unknown"
