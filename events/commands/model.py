"""Commands of the Model aggregate (model prices)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, ClassVar

from pydantic import AfterValidator, StringConstraints

from events.base import Command
from events.catalog.model import ModelName, UsdPerMtok
from events.ids import model_aggregate_id

__all__ = ["EscapableModelName", "RegisterModel"]


def _escapable(name: str) -> str:
    model_aggregate_id(name)  # raises ValueError when the escaped id would break the id rule
    return name


EscapableModelName = Annotated[ModelName, AfterValidator(_escapable)]
"""A model name that still fits the id rule once escaped into its aggregate id."""


def _as_utc(moment: datetime) -> datetime:
    # A price date without a zone is read as UTC: the log's clock is UTC throughout.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+23:59 falls before year 1 in UTC
        raise ValueError("the time is out of range once converted to UTC") from None


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
    effective_from: Annotated[datetime, AfterValidator(_as_utc)] | None = None

    def target_id(self) -> str:
        """Returns the model's aggregate id: its name, escaped to fit a subject."""
        return model_aggregate_id(self.model)
