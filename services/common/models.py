"""The two kinds of pydantic model every part of the project builds on."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """Data from outside or kept as a record (HTTP bodies, cases): an unknown field is an
    error, so a typo never silently drops data."""

    model_config = ConfigDict(extra="forbid")


class FrozenModel(BaseModel):
    """Data that never changes once read: Kafka messages, commands and configuration (roster,
    service levels). Unknown fields are errors; instances are immutable and hashable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
