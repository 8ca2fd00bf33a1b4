"""Settings of the ingest service (environment prefix ``TRIAGE_INGEST_``)."""

from __future__ import annotations

import re
from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings

DEV_API_KEY = "triage-dev-key"
DEV_PLATFORM = "dev"
_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
_PLATFORM = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class IngestSettings(ServiceSettings):
    """Everything the ingest service can be told; each field is one environment variable."""

    model_config = SettingsConfigDict(
        env_prefix="TRIAGE_INGEST_", frozen=True, extra="ignore", validate_by_name=True
    )

    api_keys: dict[str, str] = Field(
        default_factory=dict,
        description=(
            'API keys per posting platform, as JSON {"platform": "sha256:<hex of the key>"}. '
            "`triage keygen PLATFORM` makes a key and its hash."
        ),
    )
    hmac_secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description=(
            'HMAC-SHA256 signing secrets per platform, as JSON {"platform": "secret"}. A platform '
            "listed here must sign every request."
        ),
    )
    signature_tolerance_s: int = Field(
        default=300, ge=5, le=3600, description="Largest accepted age of a signature timestamp."
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        le=64 * 1_048_576,
        description="Largest request body for one event (JSON, chat, social).",
    )
    max_email_bytes: int = Field(
        default=10 * 1_048_576,
        ge=1024,
        le=64 * 1_048_576,
        description="Largest raw e-mail accepted (attachments included; they are not kept).",
    )
    max_batch_bytes: int = Field(
        default=8 * 1_048_576, ge=1024, le=256 * 1_048_576, description="Largest batch body."
    )
    max_batch_items: int = Field(
        default=100, ge=1, le=1000, description="Most events in one batch request."
    )
    body_read_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="Longest time to receive a request body; a slower one is refused with 408.",
    )
    parse_workers: int = Field(
        default=2,
        ge=1,
        le=64,
        description=(
            "Worker processes that parse e-mails and large JSON bodies off the event loop; each "
            "starts with the first body that needs it."
        ),
    )
    parse_cpu_limit_s: float = Field(
        default=5.0,
        gt=0,
        le=120,
        description="CPU seconds one body may take to parse; beyond that it is refused with 422.",
    )
    parse_timeout_s: float = Field(
        default=15.0,
        gt=0,
        le=600,
        description=(
            "Wall-clock bound on one parse (waiting for a free worker excluded); beyond it the "
            "worker is stopped and replaced, and the body refused with 422."
        ),
    )
    parse_inline_bytes: int = Field(
        default=64 * 1024,
        ge=0,
        le=1_048_576,
        description="JSON bodies up to this size are parsed in the request; larger ones by a "
        "parse worker.",
    )
    max_text_chars: int = Field(
        default=20_000,
        ge=100,
        le=200_000,
        description="Longest message text, in characters, after normalisation.",
    )
    produce_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="How long to wait for the broker's acknowledgement before answering 503.",
    )
    retry_after_s: int = Field(
        default=5, ge=1, le=300, description="Retry-After sent with 503 answers."
    )
    linger_ms: int = Field(
        default=5, ge=0, le=1000, description="Producer linger: batches concurrent requests."
    )
    rate_limit_per_s: float = Field(
        default=200,
        gt=0,
        le=1_000_000,
        description="Requests a second one platform (API key) may post, sustained, per process.",
    )
    rate_limit_burst: int = Field(
        default=400,
        ge=1,
        le=10_000_000,
        description="Requests one platform may post at once before the sustained rate applies.",
    )
    dedup_ttl_s: int = Field(
        default=24 * 3600,
        ge=60,
        description="How long a source event id is remembered to reject repeats.",
    )
    dedup_max_entries: int = Field(
        default=1_000_000, ge=1000, description="Most source event ids remembered."
    )

    @field_validator("api_keys")
    @classmethod
    def _check_api_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for platform, digest in value.items():
            if not _PLATFORM.match(platform):
                raise ValueError(f"platform name '{platform}' must match {_PLATFORM.pattern}")
            if not _HASH.match(digest):
                raise ValueError(
                    f"key of platform '{platform}' must be 'sha256:' and 64 lowercase hex digits "
                    "(a hash, never the key itself)"
                )
        return value

    @model_validator(mode="after")
    def _check_production(self) -> Self:
        if self.environment == "production" and not self.api_keys:
            raise ValueError(
                "TRIAGE_INGEST_API_KEYS must list at least one platform key in production"
            )
        if self.parse_timeout_s < self.parse_cpu_limit_s:
            raise ValueError("parse_timeout_s must be at least parse_cpu_limit_s")
        unknown = set(self.hmac_secrets) - set(self.api_keys) - {DEV_PLATFORM}
        if unknown:
            raise ValueError(f"hmac_secrets names platforms without an API key: {sorted(unknown)}")
        return self

    @property
    def development_key_enabled(self) -> bool:
        """The development key works only in development and only when no keys are set."""
        return self.environment == "development" and not self.api_keys
