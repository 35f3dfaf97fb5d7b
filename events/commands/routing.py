"""Commands of the routing aggregate: ask which model to call."""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import Field, model_validator

from events.base import Command
from events.catalog.model import Tier
from events.ids import Id
from events.money import UsdPerMtok

from .model import EscapableModelName

__all__ = ["RecommendModel"]


class RecommendModel(Command):
    """Recommend the cheapest healthy model that fits the price cap and the budget left.

    Candidates: ``models`` (an allowed list), or the models of ``tier``, or both (those
    of the list in the tier); neither: every priced model. ``estimate_tokens`` prices the
    call; ``run_id`` names the run whose budget left it must fit. The decision is
    recorded (``ModelRecommended``) and its reply carries ``model`` (null when none
    fits), ``reason``, ``considered`` and ``fallbacks``.
    """

    aggregate: ClassVar[str] = "routing"
    id_field: ClassVar[str] = "recommendation_id"
    subject: ClassVar[str] = "model.recommend"

    recommendation_id: Id | None = None
    tier: Tier | None = None
    models: list[EscapableModelName] = Field(default_factory=list, max_length=64)
    max_usd_per_mtok: UsdPerMtok | None = None
    run_id: Id | None = None
    estimate_tokens: int = Field(default=0, ge=0, le=100_000_000)

    @model_validator(mode="after")
    def _unique_models(self) -> Self:
        if len(set(self.models)) != len(self.models):
            raise ValueError("models lists a model twice")
        return self
