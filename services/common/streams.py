"""What the faust workers share: topics declared as raw bytes (the services parse and write
their own JSON models, so a record that does not parse reaches the agent and its dead-letter
topic instead of failing inside faust)."""

from __future__ import annotations

from typing import Any

from services.common.kafka import KafkaSettings
from services.common.topics import TopicSpec


def raw_topic(app: Any, kafka: KafkaSettings, spec: TopicSpec) -> Any:
    """A faust topic of this deployment whose keys and values are bytes as on the wire."""
    return app.topic(
        kafka.topic(spec),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=spec.partitions,
    )
