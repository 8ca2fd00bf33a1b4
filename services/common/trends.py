"""Messages of the trends worker: surges (topic ``trends.surges``) and emerging issues (topic
``trends.emerging``), read by the floor's alerts, the console and anything that pages."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from services.common.messages import UtcDatetime
from services.common.models import FrozenModel


class SurgeEvent(FrozenModel):
    """A category on a channel (or on every channel: ``channel`` "all") getting far more messages
    than its baseline; sent when the surge starts and again when it ends (``ended_at``)."""

    schema_version: Literal[1] = 1
    event_type: Literal["SurgeEvent"] = "SurgeEvent"
    event_id: uuid.UUID = Field(description="Stable per surge and state (started or ended).")
    surge_id: uuid.UUID = Field(description="The same for every replica that saw the surge.")
    state: Literal["started", "ended"]
    category: str
    channel: str = Field(description="A channel, or 'all' for the category on every channel.")
    window_start: UtcDatetime = Field(description="Start of the window that raised it.")
    detected_at: UtcDatetime
    ended_at: UtcDatetime | None = None
    count: int = Field(ge=0, description="Messages in the window when it was raised.")
    expected: float = Field(ge=0, description="What the baseline expected in that window.")
    p_value: float = Field(ge=0, le=1, description="Poisson tail probability of the count.")
    baseline: Literal["recent", "seasonal", "floor"]
    peak_count: int = Field(ge=0)


class RepresentativeMessage(FrozenModel):
    """A message that shows what a cluster is about."""

    event_id: uuid.UUID
    excerpt: str = Field(max_length=200)
    at: UtcDatetime
    category: str
    channel: str


class EmergingIssue(FrozenModel):
    """A cluster of similar messages growing fast; sent when it is first reported, and again
    (``report`` 2, 3, ...) each time it has grown by half since its last report."""

    schema_version: Literal[1] = 1
    event_type: Literal["EmergingIssue"] = "EmergingIssue"
    event_id: uuid.UUID = Field(
        description="Stable per cluster and report: replicas send the same id."
    )
    cluster_id: uuid.UUID
    report: int = Field(
        default=1, ge=1, description="1 when first reported, then 2, 3, ... for growth updates."
    )
    previous_size: int | None = Field(
        default=None, ge=1, description="The cluster's size at its last report (updates only)."
    )
    model_version: str = Field(description="The embedding space the cluster lives in.")
    size: int = Field(ge=1)
    recent: int = Field(ge=0, description="Members in the growth window.")
    expected_recent: float = Field(ge=0, description="What the cluster's usual share predicts.")
    growth: float = Field(ge=0)
    first_seen: UtcDatetime
    last_seen: UtcDatetime
    detected_at: UtcDatetime
    top_terms: tuple[str, ...]
    categories: dict[str, int]
    channels: dict[str, int]
    representatives: tuple[RepresentativeMessage, ...] = Field(max_length=3)
    member_ids: tuple[uuid.UUID, ...] = Field(
        description="Event ids of its latest members (at most 500): the router's bulk-tag input."
    )
