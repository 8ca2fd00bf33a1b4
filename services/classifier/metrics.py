"""Prometheus metrics of the classifier service, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, Info

from services.common.observability import add_runtime_collectors

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ClassifierMetrics:
    """The service's metrics; label values come from the model's fixed label sets."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        add_runtime_collectors(self.registry)
        self.messages = Counter(
            "triage_classifier_messages_total",
            "Messages tagged, by tag and label.",
            ["tag", "label"],
            registry=self.registry,
        )
        self.needs_review = Counter(
            "triage_classifier_needs_review_total",
            "Messages with at least one tag below its threshold, by the tag that was.",
            ["tag"],
            registry=self.registry,
        )
        self.classified = Counter(
            "triage_classifier_classified_total",
            "Messages classified and emitted.",
            registry=self.registry,
        )
        self.review_messages = Counter(
            "triage_classifier_review_messages_total",
            "Messages marked needs_review.",
            registry=self.registry,
        )
        self.duplicates = Counter(
            "triage_classifier_duplicates_total",
            "Repeated events skipped (already classified).",
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "triage_classifier_dead_letters_total",
            "Records sent to the dead-letter topic, by error type.",
            ["error_type"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "triage_classifier_batch_size",
            "Messages per model batch.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )
        self.model_seconds = Histogram(
            "triage_classifier_model_duration_seconds",
            "Time the model takes per batch.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.latency = Histogram(
            "triage_classifier_latency_seconds",
            "From ingest's acceptance of a message to its classified event being sent.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.model_info = Info(
            "triage_classifier_model", "The model in use.", registry=self.registry
        )
