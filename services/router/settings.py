"""Settings of the router service (environment prefix ``TRIAGE_ROUTER_``)."""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings
from services.router.engine import EngineSettings
from services.router.errors import DEFAULT_MAX_BODY_BYTES
from services.router.routing import QueueOrder


class RouterSettings(ServiceSettings):
    """Everything the router can be told; each field is one environment variable."""

    model_config = SettingsConfigDict(
        env_prefix="TRIAGE_ROUTER_", frozen=True, extra="ignore", validate_by_name=True
    )

    port: int = Field(default=8082, ge=1, le=65535, description="Port of the agent API.")
    app_id: str = Field(
        default="triage-router",
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Consumer group and table namespace of the router workers.",
    )
    roster_file: Path | None = Field(
        default=None,
        description="Roster YAML; default: the development roster (not in production).",
    )
    sla_file: Path | None = Field(
        default=None, description="Service levels and calendars YAML; default: the shipped one."
    )
    offer_timeout_s: float = Field(
        default=60, gt=0, le=3600, description="Seconds an agent has to accept an offer."
    )
    thread_window_h: float = Field(
        default=24,
        ge=0,
        le=24 * 30,
        description="A customer's new message joins their open case "
        "updated less than this many hours ago.",
    )
    reopen_window_days: float = Field(
        default=7, ge=0, le=365, description="A reply to a case resolved this recently reopens it."
    )
    retention_days: float = Field(
        default=7,
        ge=1,
        le=3650,
        description="Days a resolved case is kept, compressed, after its resolution (or the "
        "reopen window if longer): served by id, open to a CSAT score or a relabel. Then it "
        "leaves the router's memory and tables; its events stay on cases.events.",
    )
    recent_resolved_h: float = Field(
        default=1,
        ge=0,
        le=24 * 7,
        description="Hours a resolved case stays whole after its last change, listed by "
        "GET /v1/cases and counted on the floor; then it is kept compressed.",
    )
    lapses_before_away: int = Field(
        default=2,
        ge=0,
        le=100,
        description="Offers in a row an available agent lets lapse before the router sets them "
        "away, returns what they were offered to the queue and says so on agents.events "
        "(0: never).",
    )
    disconnect_grace_s: float = Field(
        default=120,
        ge=0,
        le=86400,
        description="An available agent whose every console stream (GET /v1/stream) has been "
        "closed this long is set away the same way (0: never). Agents who never opened a "
        "stream are not watched.",
    )
    hostile_weight: float = Field(
        default=2.0, ge=1, le=10, description="Capacity an abusive or angry case takes."
    )
    max_hostile_streak: int = Field(
        default=2, ge=1, le=100, description="Most hostile cases one agent gets in a row."
    )
    aging_points_per_minute: float = Field(
        default=0.5, ge=0, le=100, description="Priority score a waiting case gains per minute."
    )
    queue_order: Literal["risk", "score"] = Field(
        default="risk",
        description="Order of the team queues: `risk` (the case nearest to breaching a deadline "
        "it can still meet first, priority as the tie-break) or `score` (priority score plus "
        "aging, deadlines not used). See docs/routing.md.",
    )
    tick_interval_s: float = Field(
        default=0.5, gt=0, le=60, description="How often the clock checks for due deadlines."
    )
    tick_resend_s: float = Field(
        default=10,
        gt=0,
        le=600,
        description="A clock tick not applied this long after it was sent is sent again.",
    )
    tick_heartbeat_s: float = Field(
        default=30,
        gt=0,
        le=600,
        description="Longest time between clock ticks while nothing is due (the "
        "triage_router_tick_applied_timestamp_seconds metric shows the clock is alive).",
    )
    command_timeout_s: float = Field(
        default=10, gt=0, le=120, description="Longest an API call waits for its command."
    )
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES,
        ge=1024,
        le=64 * 1_048_576,
        description="Largest request body the agent API reads (413 beyond).",
    )
    store: str = Field(
        default="memory://",
        description="faust table store: memory:// (rebuilt from the changelog) or rocksdb://.",
    )
    data_dir: Path = Field(default=Path(".triage/router"), description="Worker state directory.")
    trends_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/?#]+/?$",
        description="Base URL of the trends API (`triage trends`), which the router forwards "
        "GET /v1/trends and /v1/trends/* to for the console; unset: those answer 503. "
        "`triage up` sets it.",
    )
    advertised_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/?#]+/?$",
        description="Where the other router workers reach this worker's agent API (with "
        "floors, a request for a floor another worker routes is forwarded there); default: "
        "http://<host>:<port>, with this machine's name when the host is a wildcard.",
    )

    def api_url(self) -> str:
        """The agent API's URL as the other workers reach it."""
        if self.advertised_url:
            return self.advertised_url.rstrip("/")
        host = self.host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard names no one host
            host = socket.gethostname()
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def engine_settings(self) -> EngineSettings:
        """The routing rules these settings describe."""
        from services.router.priority import PriorityWeights

        return EngineSettings(
            offer_timeout=timedelta(seconds=self.offer_timeout_s),
            thread_window=timedelta(hours=self.thread_window_h),
            reopen_window=timedelta(days=self.reopen_window_days),
            retention=timedelta(days=self.retention_days),
            recent_resolved=timedelta(hours=self.recent_resolved_h),
            hostile_weight=self.hostile_weight,
            max_hostile_streak=self.max_hostile_streak,
            lapses_before_away=self.lapses_before_away,
            weights=PriorityWeights(aging_points_per_minute=self.aging_points_per_minute),
            queue_order=QueueOrder(self.queue_order),
        )
