"""Events of the routing aggregate: one per ``model.recommend`` decision, for the audit."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from events.base import DomainEvent, ShortText
from events.ids import Id
from events.money import Usd

from .model import ModelName, Tier

__all__ = ["ConsideredModel", "ModelRecommended"]


class ConsideredModel(BaseModel):
    """One candidate of a routing decision, cheapest first, and why it was (not) chosen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelName
    provider: str | None = None
    usd_per_mtok: Usd | None = None
    """The higher of its input and output price: what each estimated token is priced at."""
    estimate_cost_usd: Usd | None = None
    chosen: bool = False
    reason: ShortText = ""


class ModelRecommended(DomainEvent):
    """``model.recommend`` chose ``model`` (None: no candidate fit), for ``reason``.

    ``considered`` is the chain of candidates it went through, cheapest first;
    ``fallbacks`` the chosen model's own fallback chain (``model.configure``).
    """

    aggregate: ClassVar[str] = "routing"

    recommendation_id: Id
    run_id: Id | None = None
    tier: Tier | None = None
    models: list[ModelName] = Field(default_factory=list)
    max_usd_per_mtok: Usd | None = None
    estimate_tokens: int = Field(ge=0)
    model: ModelName | None = None
    reason: ShortText
    considered: list[ConsideredModel] = Field(default_factory=list)
    fallbacks: list[ModelName] = Field(default_factory=list)
    budget_left_tokens: int | None = None
    budget_left_usd: Usd | None = None
