"""Topic names, declared once, with the partitions and retention each one is created with.

Every service refers to topics through these specs. An optional prefix
(``TRIAGE_KAFKA_TOPIC_PREFIX``) keeps several deployments, or test runs, apart on one broker.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic as the services create and use it."""

    name: str
    partitions: int
    retention_ms: int
    description: str

    def full_name(self, prefix: str = "") -> str:
        """The name on the broker, with the deployment's prefix."""
        return f"{prefix}{self.name}"


feedback_received = TopicSpec(
    name="feedback.received",
    partitions=6,
    retention_ms=7 * DAY_MS,
    description="Normalised customer messages from every channel, keyed by customer id.",
)

feedback_received_dlq = TopicSpec(
    name="feedback.received.dlq",
    partitions=1,
    retention_ms=30 * DAY_MS,
    description="Records of feedback.received the classifier could not process, with the reason.",
)

feedback_classified = TopicSpec(
    name="feedback.classified",
    partitions=6,
    retention_ms=7 * DAY_MS,
    description="Messages with sentiment, category, difficult type, facts and history.",
)

feedback_classified_dlq = TopicSpec(
    name="feedback.classified.dlq",
    partitions=1,
    retention_ms=30 * DAY_MS,
    description="Records of feedback.classified the router could not read, with the reason.",
)

router_inbox = TopicSpec(
    name="router.inbox",
    partitions=1,
    retention_ms=30 * DAY_MS,
    description=(
        "Everything that changes routing state, in order: classified messages, agents' "
        "commands, clock ticks. One partition per routing domain (all teams of a contact centre)."
    ),
)

router_inbox_dlq = TopicSpec(
    name="router.inbox.dlq",
    partitions=1,
    retention_ms=30 * DAY_MS,
    description="Inbox records the router could not apply, with the reason.",
)

cases_events = TopicSpec(
    name="cases.events",
    partitions=6,
    retention_ms=30 * DAY_MS,
    description="The case lifecycle (created, offered, assigned, ... resolved), keyed by case id.",
)

agents_events = TopicSpec(
    name="agents.events",
    partitions=1,
    retention_ms=30 * DAY_MS,
    description="What the router did to agents on its own: set away after lapsed offers or a "
    "lost console, keyed by agent id.",
)

feedback_corrections = TopicSpec(
    name="feedback.corrections",
    partitions=1,
    retention_ms=10 * 365 * DAY_MS,
    description="Supervisors' corrections of tags, keyed by case id: training data for the model.",
)

webhooks_dlq = TopicSpec(
    name="webhooks.dlq",
    partitions=1,
    retention_ms=30 * DAY_MS,
    description=(
        "Case events a webhook subscriber did not accept within its retry budget (or that could "
        "not be read), with the subscription and the reason, keyed by case id."
    ),
)

trends_surges = TopicSpec(
    name="trends.surges",
    partitions=1,
    retention_ms=30 * DAY_MS,
    description=(
        "Surges of a category on a channel (started, ended), keyed by category and channel; "
        "ids are stable, so copies from several trends workers are repeats."
    ),
)

trends_emerging = TopicSpec(
    name="trends.emerging",
    partitions=1,
    retention_ms=30 * DAY_MS,
    description=(
        "Clusters of similar messages growing fast, keyed by cluster id, with their members' "
        "event ids; ids are stable, so copies from several trends workers are repeats."
    ),
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    feedback_received,
    feedback_received_dlq,
    feedback_classified,
    feedback_classified_dlq,
    router_inbox,
    router_inbox_dlq,
    cases_events,
    agents_events,
    feedback_corrections,
    webhooks_dlq,
    trends_surges,
    trends_emerging,
)

#: The trends worker's output topics.
TRENDS_TOPICS: tuple[TopicSpec, ...] = (trends_surges, trends_emerging)
