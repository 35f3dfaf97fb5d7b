"""Events of the Model aggregate: a model's list prices, each with the date it applies from."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints

from events.base import DomainEvent
from events.money import MAX_USD_PER_MTOK, Usd, UsdPerMtok, register_money_upcaster
from events.versions import registry

__all__ = [
    "MAX_USD_PER_MTOK",
    "ModelConfigured",
    "ModelName",
    "ModelPriceSet",
    "ModelQuotaSet",
    "ModelRegistered",
    "Tier",
    "UsdPerMtok",
]

ModelName = Annotated[str, StringConstraints(min_length=1, max_length=128, strict=True)]
Tier = Annotated[str, StringConstraints(min_length=1, max_length=64, strict=True,
                                        pattern=r"^[A-Za-z0-9_-]+$")]
"""A capability tier models are grouped by (``small``, ``frontier``, ...)."""


class _ModelEvent(DomainEvent):
    aggregate: ClassVar[str] = "model"

    model: ModelName
    """The model's name as users write it; the aggregate id is its escaped form."""


class ModelRegistered(_ModelEvent):
    """The model became known (always followed by its first ``ModelPriceSet``)."""

    provider: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class ModelPriceSet(_ModelEvent):
    """From ``effective_from`` on, the model costs this; earlier usage keeps its own price.

    A later event with the same ``effective_from`` corrects that entry. Version 2 holds
    the prices as exact decimals and adds the cached-input prices (null: the input price).
    """

    schema_version: ClassVar[int] = 2

    provider: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    input_usd_per_mtok: UsdPerMtok
    output_usd_per_mtok: UsdPerMtok
    effective_from: datetime
    cached_input_usd_per_mtok: UsdPerMtok | None = None
    """Input tokens read from the provider's prompt cache."""
    cache_write_usd_per_mtok: UsdPerMtok | None = None
    """Input tokens written to the provider's prompt cache."""


class ModelQuotaSet(_ModelEvent):
    """The model's daily quota (per UTC day) is now this; a null bound is none."""

    max_tokens_per_day: int | None = Field(default=None, ge=0)
    max_requests_per_day: int | None = Field(default=None, ge=0)
    max_cost_usd_per_day: Usd | None = None


register_money_upcaster(registry, "ModelPriceSet", 1,
                        ("input_usd_per_mtok", "output_usd_per_mtok"))


class ModelConfigured(_ModelEvent):
    """The model's routing data: its tier, fallback chain and breaker thresholds.

    ``fallbacks`` are tried in order when a call to the model fails with a ``fallback``
    error class; ``failure_threshold`` and ``cooldown_s`` set its circuit breaker.
    """

    tier: Tier | None = None
    fallbacks: list[ModelName] = Field(default_factory=list, max_length=16)
    failure_threshold: int | None = Field(default=None, ge=1, le=10_000)
    cooldown_s: float | None = Field(default=None, gt=0, le=86_400)
