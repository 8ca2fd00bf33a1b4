"""Settings of the webhook worker (environment prefix ``TRIAGE_WEBHOOKS_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class WebhooksSettings(ServiceSettings):
    """Everything the webhook worker can be told; each field is one environment variable."""

    model_config = SettingsConfigDict(
        env_prefix="TRIAGE_WEBHOOKS_", frozen=True, extra="ignore", validate_by_name=True
    )

    port: int = Field(default=8083, ge=1, le=65535, description="Port of /healthz and /metrics.")
    file: Path | None = Field(
        default=None,
        description="Subscriptions YAML (see docs/webhooks.md); none: the worker runs idle.",
    )
    group_prefix: str = Field(
        default="triage-webhooks",
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Consumer groups are this plus '.' and the subscription id: one position "
        "on cases.events per subscription.",
    )
    start_from: Literal["latest", "earliest"] = Field(
        default="latest",
        description="Where a subscription seen for the first time starts on cases.events; "
        "afterwards it resumes where it stopped.",
    )
    timeout_s: float = Field(
        default=10.0, gt=0, le=120, description="Seconds a receiver has to answer one delivery."
    )
    max_attempts: int = Field(
        default=12,
        ge=1,
        le=100,
        description="Attempts per event and subscription before it goes to webhooks.dlq.",
    )
    backoff_initial_s: float = Field(
        default=1.0, gt=0, le=3600, description="Wait before the first retry; doubles each time."
    )
    backoff_max_s: float = Field(
        default=300.0, gt=0, le=86_400, description="Longest wait between two attempts."
    )
    queue_size: int = Field(
        default=200,
        ge=1,
        le=100_000,
        description="Events read ahead per partition and subscription before reading pauses.",
    )
    commit_interval_s: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="How often delivered positions are committed (a crash redelivers at most "
        "this much).",
    )

    @model_validator(mode="after")
    def _check_backoff(self) -> WebhooksSettings:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must not be below backoff_initial_s")
        return self
