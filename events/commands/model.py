"""Commands of the Model aggregate (model prices)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AfterValidator, Field, StringConstraints

from events.base import Command, Moment
from events.catalog.model import ModelName, Tier, UsdPerMtok
from events.ids import model_aggregate_id
from events.money import UsdAmount

__all__ = ["ConfigureModel", "EscapableModelName", "RegisterModel", "SetModelQuota"]

DailyCount = Annotated[int, Field(ge=0, le=10**15)]


def _escapable(name: str) -> str:
    model_aggregate_id(name)  # raises ValueError when the escaped id would break the id rule
    return name


EscapableModelName = Annotated[ModelName, AfterValidator(_escapable)]
"""A model name that still fits the id rule once escaped into its aggregate id."""


class RegisterModel(Command):
    """Register a model's price from ``effective_from`` on (default: now).

    The same price with the same ``effective_from`` again writes nothing, so a
    seed file of prices loads idempotently.
    """

    aggregate: ClassVar[str] = "model"
    id_field: ClassVar[str] = "model"
    subject: ClassVar[str] = "model.register"

    model: EscapableModelName
    provider: Annotated[str, StringConstraints(min_length=1, max_length=128, strict=True)]
    input_usd_per_mtok: UsdPerMtok
    output_usd_per_mtok: UsdPerMtok
    effective_from: Moment | None = None
    cached_input_usd_per_mtok: UsdPerMtok | None = None
    """Price of input read from the prompt cache (absent: the input price)."""
    cache_write_usd_per_mtok: UsdPerMtok | None = None
    """Price of input written to the prompt cache (absent: the input price)."""

    def target_id(self) -> str:
        """Returns the model's aggregate id: its name, escaped to fit a subject."""
        return model_aggregate_id(self.model)


class ConfigureModel(Command):
    """Set a registered model's tier, fallback chain and circuit-breaker thresholds.

    Each field replaces what was set before; the same settings again write nothing.
    """

    aggregate: ClassVar[str] = "model"
    id_field: ClassVar[str] = "model"
    subject: ClassVar[str] = "model.configure"

    model: EscapableModelName
    tier: Tier | None = None
    fallbacks: list[EscapableModelName] = Field(default_factory=list, max_length=16)
    failure_threshold: int | None = Field(default=None, ge=1, le=10_000)
    cooldown_s: float | None = Field(default=None, gt=0, le=86_400, allow_inf_nan=False)

    def target_id(self) -> str:
        """Returns the model's aggregate id: its name, escaped to fit a subject."""
        return model_aggregate_id(self.model)


class SetModelQuota(Command):
    """Set a registered model's daily quota (per UTC day); a bound left out or null is none.

    The ``quota_daily`` view holds each day's usage against it. The quota is the
    provider's limit as the operator knows it; usage past it is still recorded.
    """

    aggregate: ClassVar[str] = "model"
    id_field: ClassVar[str] = "model"
    subject: ClassVar[str] = "model.set_quota"

    model: EscapableModelName
    max_tokens_per_day: DailyCount | None = None
    max_requests_per_day: DailyCount | None = None
    max_cost_usd_per_day: UsdAmount | None = None

    def target_id(self) -> str:
        """Returns the model's aggregate id: its name, escaped to fit a subject."""
        return model_aggregate_id(self.model)
