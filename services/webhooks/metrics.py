"""The webhook worker's metrics (its own registry), served on ``/metrics``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.common.observability import add_runtime_collectors

# A receiver answering in a few milliseconds up to one at the default 10 s timeout.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class WebhookMetrics:
    """Counters per subscription id (a bounded label: the ids of the subscriptions file)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        add_runtime_collectors(self.registry)
        self.deliveries = Counter(
            "triage_webhook_deliveries_total",
            "Case events a subscriber accepted (answered 2xx).",
            ["subscription"],
            registry=self.registry,
        )
        self.failures = Counter(
            "triage_webhook_delivery_failures_total",
            "Delivery attempts that failed, by kind: http_status, timeout, connection.",
            ["subscription", "error_type"],
            registry=self.registry,
        )
        self.retries = Counter(
            "triage_webhook_retries_total",
            "Attempts scheduled again after a failure.",
            ["subscription"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "triage_webhook_dead_letters_total",
            "Case events sent to webhooks.dlq instead of the subscriber, by the last failure.",
            ["subscription", "error_type"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "triage_webhook_delivery_duration_seconds",
            "Time from sending a delivery attempt to the receiver's answer (or failure).",
            ["subscription"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )

    def watch(self, progress: Callable[[], Mapping[str, tuple[int, float]]]) -> None:
        """Report lag from ``progress()``: subscription -> (records behind, seconds the oldest
        undelivered event has waited)."""
        self.registry.register(_LagCollector(progress))


class _LagCollector(Collector):
    def __init__(self, progress: Callable[[], Mapping[str, tuple[int, float]]]) -> None:
        self._progress = progress

    def collect(self) -> Iterator[Metric]:
        records = GaugeMetricFamily(
            "triage_webhook_lag_records",
            "Records of cases.events not yet delivered (or dead-lettered) for the subscription.",
            labels=["subscription"],
        )
        age = GaugeMetricFamily(
            "triage_webhook_oldest_pending_age_seconds",
            "How long the oldest event in delivery for the subscription has waited since it "
            "was written to cases.events (0 when none is).",
            labels=["subscription"],
        )
        for subscription, (behind, waited) in sorted(self._progress().items()):
            records.add_metric([subscription], behind)
            age.add_metric([subscription], waited)
        yield records
        yield age

    def describe(self) -> Iterable[Metric]:
        return []
