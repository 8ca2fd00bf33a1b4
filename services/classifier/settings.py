"""Settings of the classifier service (environment prefix ``TRIAGE_CLASSIFIER_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class ClassifierSettings(ServiceSettings):
    """Everything the classifier can be told; each field is one environment variable."""

    model_config = SettingsConfigDict(
        env_prefix="TRIAGE_CLASSIFIER_", frozen=True, extra="ignore", validate_by_name=True
    )

    port: int = Field(
        default=8081, ge=1, le=65535, description="Port of the metrics/health server."
    )
    app_id: str = Field(
        default="triage-classifier",
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Consumer group and table namespace; workers with one id share the work.",
    )
    batch_size: int = Field(
        default=32, ge=1, le=512, description="Most messages the model tags at once."
    )
    batch_wait_s: float = Field(
        default=0.2, gt=0, le=10, description="Longest wait to fill a batch before tagging it."
    )
    model_dir: Path | None = Field(
        default=None, description="Model directory from `triage train`; default: the shipped one."
    )
    threshold_sentiment: float | None = Field(
        default=None, ge=0, le=1, description="Confidence below which sentiment needs review."
    )
    threshold_category: float | None = Field(
        default=None, ge=0, le=1, description="Confidence below which category needs review."
    )
    threshold_difficult: float | None = Field(
        default=None, ge=0, le=1, description="Confidence below which difficult type needs review."
    )
    history_window_days: int = Field(
        default=30, ge=1, le=365, description="How far back a customer's messages count."
    )
    repeat_threshold: int = Field(
        default=2,
        ge=1,
        le=100,
        description="Earlier complaints in the window that make a customer a repeat complainer.",
    )
    history_max_entries: int = Field(
        default=50, ge=5, le=1000, description="Most messages remembered per customer."
    )
    store: str = Field(
        default="memory://",
        description="faust table store: memory:// (rebuilt from the changelog) or rocksdb://.",
    )
    data_dir: Path = Field(
        default=Path(".triage/classifier"), description="Worker state directory."
    )
    backend: Literal["torch", "onnx"] = Field(
        default="onnx",
        description=(
            "Model runtime: onnx (the shipped int8 model in ONNX Runtime, fastest) or torch "
            "(the same fine-tuned weights in PyTorch)."
        ),
    )
    torch_threads: int | None = Field(
        default=None, ge=1, le=256, description="CPU threads of the model (either backend)."
    )

    def thresholds(self) -> dict[str, float]:
        """Threshold overrides that are set."""
        values = {
            "sentiment": self.threshold_sentiment,
            "category": self.threshold_category,
            "difficult": self.threshold_difficult,
        }
        return {tag: value for tag, value in values.items() if value is not None}
