"""Settings of the trends worker (environment prefix ``TRIAGE_TRENDS_``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings
from services.trends.clusters import ClusterRules
from services.trends.surges import SurgeRules


class TrendsSettings(ServiceSettings):
    """Everything the trends worker can be told; each field is one environment variable."""

    model_config = SettingsConfigDict(
        env_prefix="TRIAGE_TRENDS_", frozen=True, extra="ignore", validate_by_name=True
    )

    port: int = Field(default=8084, ge=1, le=65535, description="Port of the trends API.")
    roster_file: Path | None = Field(
        default=None,
        description="The router's roster YAML: supervisors' tokens and the teams' categories; "
        "default: the development roster (not in production).",
    )
    replay_days: float = Field(
        default=7,
        ge=0,
        le=7,
        description="History read back from feedback.classified at start to rebuild the state.",
    )
    evaluate_interval_s: float = Field(
        default=15, gt=0, le=300, description="How often surges and clusters are judged."
    )
    emit_horizon_s: float = Field(
        default=900,
        gt=0,
        le=86_400,
        description="Surges and emerging clusters found while replaying older history than this "
        "are kept for the API but not sent again to the topics.",
    )
    surge_window_min: float = Field(
        default=10, gt=0, le=120, description="Minutes of the window a surge is judged on."
    )
    surge_min_count: int = Field(
        default=6, ge=1, le=10_000, description="Fewest messages in the window for a surge."
    )
    surge_min_ratio: float = Field(
        default=3.0, ge=1, le=100, description="Fewest times the expected count for a surge."
    )
    surge_max_p: float = Field(
        default=1e-5, gt=0, lt=1, description="Largest tail probability of a surge's count."
    )
    cluster_similarity: float = Field(
        default=0.55,
        gt=0,
        lt=1,
        description="Cosine similarity of sketches at which a message joins a cluster.",
    )
    cluster_term_weight: float = Field(
        default=0.3,
        ge=0,
        lt=1,
        description="Weight of shared words next to the embedding in a message's similarity "
        "to a cluster (0: the embedding alone).",
    )
    cluster_merge_similarity: float = Field(
        default=0.75,
        gt=0,
        le=1,
        description="Centroid similarity at which clusters active together are merged (1: never).",
    )
    cluster_min_recent: int = Field(
        default=5, ge=2, le=10_000, description="Fewest new members of an emerging cluster."
    )
    cluster_growth_window_min: float = Field(
        default=30, gt=0, le=24 * 60, description="Minutes over which a cluster's growth is judged."
    )
    cluster_baseline_window_min: float = Field(
        default=360,
        gt=0,
        le=7 * 24 * 60,
        description="Minutes before the growth window that give a cluster's usual share.",
    )
    cluster_max_p: float = Field(
        default=3e-5, gt=0, lt=1, description="Largest tail probability of a cluster's growth."
    )
    warmup_s: float = Field(
        default=3600,
        ge=0,
        le=86_400,
        description="History the worker must have seen before it raises anything.",
    )

    def surge_rules(self) -> SurgeRules:
        """The surge rules these settings describe."""
        return SurgeRules(
            window=timedelta(minutes=self.surge_window_min),
            min_count=self.surge_min_count,
            min_ratio=self.surge_min_ratio,
            max_p=self.surge_max_p,
            warmup=timedelta(seconds=self.warmup_s),
        )

    def cluster_rules(self) -> ClusterRules:
        """The clustering rules these settings describe."""
        return ClusterRules(
            similarity=self.cluster_similarity,
            term_weight=self.cluster_term_weight,
            merge_similarity=self.cluster_merge_similarity,
            min_recent=self.cluster_min_recent,
            growth_window=timedelta(minutes=self.cluster_growth_window_min),
            baseline_window=timedelta(minutes=self.cluster_baseline_window_min),
            max_p=self.cluster_max_p,
            warmup=timedelta(seconds=self.warmup_s),
        )
