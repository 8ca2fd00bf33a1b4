"""The trends worker's metrics (its own registry), served on ``/metrics``.

Volumes are exported as counters by category, channel and sentiment (bounded labels: the
taxonomy's values), so Prometheus and Grafana draw the same charts as the console; the
difficult-type mix has its own counter to keep the label sets small.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.common.observability import add_runtime_collectors


class TrendsMetrics:
    """Counters of what the trends worker saw and raised."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        add_runtime_collectors(self.registry)
        self.messages = Counter(
            "triage_trends_messages_total",
            "Classified messages counted, by category, channel and sentiment (repeats excluded).",
            ["category", "channel", "sentiment"],
            registry=self.registry,
        )
        self.difficult = Counter(
            "triage_trends_difficult_messages_total",
            "Classified messages counted, by difficult type.",
            ["difficult"],
            registry=self.registry,
        )
        self.surges = Counter(
            "triage_trends_surges_total",
            "Surges raised, by category and channel ('all': the category on every channel).",
            ["category", "channel"],
            registry=self.registry,
        )
        self.active_surges = Gauge(
            "triage_trends_active_surges",
            "Surges not over yet.",
            registry=self.registry,
        )
        self.emerging = Counter(
            "triage_trends_emerging_clusters_total",
            "Clusters of similar messages first reported as emerging.",
            registry=self.registry,
        )
        self.emerging_updates = Counter(
            "triage_trends_emerging_updates_total",
            "Growth updates of emerging clusters: reported again after growing by half.",
            registry=self.registry,
        )
        self.emerging_now = Gauge(
            "triage_trends_active_emerging_clusters",
            "Clusters emerging now.",
            registry=self.registry,
        )
        self.unreadable = Counter(
            "triage_trends_unreadable_records_total",
            "Records of feedback.classified that were not a FeedbackClassified (skipped; the "
            "router dead-letters them).",
            registry=self.registry,
        )
        self.event_time = Gauge(
            "triage_trends_clock_timestamp_seconds",
            "The trends' clock: the newest message time, or the wall clock once caught up.",
            registry=self.registry,
        )
        self.sends_failed = Counter(
            "triage_trends_send_failures_total",
            "Surge or emerging events the broker did not accept (the state keeps them).",
            ["topic"],
            registry=self.registry,
        )
