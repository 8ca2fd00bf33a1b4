"""Case priority: an explainable score from the message's tags and context, and its band."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from services.common.cases import Priority, PriorityComponent, Remedy
from services.common.messages import Category, CustomerTier, DifficultType


class PriorityWeights(BaseModel):
    """Points of each term of the score, and the score bands of P1..P3 (the rest is P4)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    negative_sentiment: float = Field(default=30, description="Points at certain negativity.")
    difficult: dict[DifficultType, float] = Field(
        default_factory=lambda: {
            DifficultType.ABUSIVE: 20.0,
            DifficultType.ANGRY: 15.0,
            DifficultType.DEMANDING: 5.0,
            DifficultType.STUBBORN: 3.0,
        }
    )
    tier: dict[CustomerTier, float] = Field(
        default_factory=lambda: {CustomerTier.VIP: 25.0, CustomerTier.PREMIUM: 12.0}
    )
    category: dict[Category, float] = Field(
        default_factory=lambda: {
            Category.TRUST_PRIVACY: 20.0,
            Category.STAFF_CONDUCT: 8.0,
            Category.BILLING: 8.0,
            Category.BROKEN_PROMISE: 6.0,
            Category.PRODUCT_FAULT: 5.0,
            Category.DELAY: 5.0,
            Category.SUGGESTION: -15.0,
            Category.PRAISE: -20.0,
        }
    )
    public_post: float = Field(default=8, description="A post others can see.")
    reach_per_decade: float = Field(
        default=4, description="More per tenfold audience above 100 (a post seen by 100k: +12)."
    )
    reach_cap: float = 20
    repeat_complainer: float = 10
    remedy_per_decade: float = Field(default=4, description="Per tenfold amount above 10.")
    remedy_cap: float = 16
    bands: tuple[float, float, float] = Field(
        default=(70, 45, 25), description="Lowest score of P1, P2 and P3."
    )
    aging_points_per_minute: float = Field(
        default=0.5, ge=0, description="Waiting raises the effective score by this much."
    )


def score_components(
    *,
    sentiment_score: float,
    difficult: DifficultType,
    tier: CustomerTier,
    category: Category,
    public: bool,
    reach: int | None,
    repeat_complainer: bool,
    remedy: Remedy | None,
    weights: PriorityWeights,
) -> list[PriorityComponent]:
    """Every term that contributes to the score, with its reason."""
    parts: list[PriorityComponent] = []
    negativity = max(0.0, -sentiment_score)
    if negativity > 0:
        parts.append(
            PriorityComponent(
                name="sentiment",
                points=round(weights.negative_sentiment * negativity, 2),
                detail=f"negative sentiment {negativity:.2f}",
            )
        )
    if points := weights.difficult.get(difficult, 0):
        parts.append(PriorityComponent(name="difficult", points=points, detail=difficult.value))
    if points := weights.tier.get(tier, 0):
        parts.append(PriorityComponent(name="tier", points=points, detail=f"{tier.value} customer"))
    if points := weights.category.get(category, 0):
        parts.append(PriorityComponent(name="category", points=points, detail=category.value))
    if public:
        audience = max(reach or 0, 0)
        extra = 0.0
        if audience > 100:
            extra = min(weights.reach_cap, weights.reach_per_decade * math.log10(audience / 100))
        parts.append(
            PriorityComponent(
                name="public",
                points=round(weights.public_post + extra, 2),
                detail=f"public post, reach {audience}" if audience else "public post",
            )
        )
    if repeat_complainer:
        parts.append(
            PriorityComponent(
                name="repeat", points=weights.repeat_complainer, detail="repeat complainer"
            )
        )
    if remedy is not None and remedy.amount and remedy.amount > 10:
        points = min(weights.remedy_cap, weights.remedy_per_decade * math.log10(remedy.amount / 10))
        parts.append(
            PriorityComponent(
                name="remedy",
                points=round(points, 2),
                detail=f"{remedy.kind.value} {remedy.amount:g} {remedy.currency or ''}".strip(),
            )
        )
    return parts


def band(score: float, weights: PriorityWeights) -> Priority:
    """The priority of a score."""
    p1, p2, p3 = weights.bands
    if score >= p1:
        return Priority.P1
    if score >= p2:
        return Priority.P2
    if score >= p3:
        return Priority.P3
    return Priority.P4


def raised(priority: Priority) -> Priority:
    """One step more urgent (P1 stays P1)."""
    order = list(Priority)
    return order[max(0, order.index(priority) - 1)]


def band_floor(priority: Priority, weights: PriorityWeights) -> float:
    """The lowest score of a priority band."""
    p1, p2, p3 = weights.bands
    return {Priority.P1: p1, Priority.P2: p2, Priority.P3: p3, Priority.P4: 0.0}[priority]


def effective_score(score: float, waited_seconds: float, weights: PriorityWeights) -> float:
    """The score with aging: the longer a case waits, the more urgent it becomes."""
    return score + weights.aging_points_per_minute * max(0.0, waited_seconds) / 60.0
