"""What every service's settings share: environment, listening address and logging."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings


class ServiceSettings(BaseSettings):
    """Base of the per-service settings classes (each adds its own environment prefix)."""

    environment: Literal["development", "production"] = Field(
        default="development",
        validation_alias=AliasChoices("TRIAGE_ENV"),
        description="'production' refuses development credentials and logs JSON.",
    )
    host: str = Field(default="127.0.0.1", description="Interface the HTTP server binds to.")
    port: int = Field(default=8080, ge=1, le=65535, description="HTTP port.")
    log_level: str = Field(default="INFO", description="Log level.")
    log_format: Literal["json", "console"] | None = Field(
        default=None, description="Log format; JSON in production, console in development."
    )

    @property
    def effective_log_format(self) -> Literal["json", "console"]:
        """The log format in force."""
        if self.log_format is not None:
            return self.log_format
        return "json" if self.environment == "production" else "console"
