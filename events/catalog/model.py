"""Events of the Model aggregate: a model's list prices, each with the date it applies from."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints

from events.base import DomainEvent

__all__ = ["MAX_USD_PER_MTOK", "ModelName", "ModelPriceSet", "ModelRegistered", "UsdPerMtok"]

MAX_USD_PER_MTOK = 100_000.0
"""No real price comes near this; a larger one is a typo (or an attack on the budgets)."""

ModelName = Annotated[str, StringConstraints(min_length=1, max_length=128, strict=True)]
UsdPerMtok = Annotated[float, Field(ge=0, le=MAX_USD_PER_MTOK, allow_inf_nan=False)]


class _ModelEvent(DomainEvent):
    aggregate: ClassVar[str] = "model"

    model: ModelName
    """The model's name as users write it; the aggregate id is its escaped form."""


class ModelRegistered(_ModelEvent):
    """The model became known (always followed by its first ``ModelPriceSet``)."""

    provider: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class ModelPriceSet(_ModelEvent):
    """From ``effective_from`` on, the model costs this; earlier usage keeps its own price.

    A later event with the same ``effective_from`` corrects that entry.
    """

    provider: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    input_usd_per_mtok: UsdPerMtok
    output_usd_per_mtok: UsdPerMtok
    effective_from: datetime
