"""Commands of the Reservation aggregate: admit a model call before it spends, give it back."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, model_validator

from events.base import Command
from events.catalog.reservation import ReleaseReason
from events.ids import Id
from events.money import UsdAmount

from .model import EscapableModelName

__all__ = ["ReleaseReservation", "ReserveBudget"]



class _ReservationCommand(Command):
    aggregate: ClassVar[str] = "reservation"
    id_field: ClassVar[str] = "reservation_id"


class ReserveBudget(_ReservationCommand):
    """Set aside an estimate on every budget that applies to the run (refused when over one)."""

    subject: ClassVar[str] = "budget.reserve"
    reservation_id: Id | None = None
    run_id: Id
    task_id: Id | None = None
    worker_id: Id | None = None
    model: EscapableModelName | None = None
    """Prices a token estimate in USD when no ``estimate_cost_usd`` is given."""
    estimate_tokens: Annotated[int, Field(ge=0, le=100_000_000)] | None = None
    estimate_cost_usd: UsdAmount | None = None
    """USD, a JSON number or a decimal string (``\"0.0015\"``); kept exact."""
    ttl_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] = 300.0
    """Released by itself this long after it was made, unless settled or released first."""

    @model_validator(mode="after")
    def _has_estimate(self) -> ReserveBudget:
        if self.estimate_tokens is None and self.estimate_cost_usd is None:
            raise ValueError("give estimate_tokens and/or estimate_cost_usd")
        return self


class ReleaseReservation(_ReservationCommand):
    """Give a reservation back: it no longer counts against any budget."""

    subject: ClassVar[str] = "budget.release"
    reservation_id: Id
    reason: ReleaseReason = "released"
