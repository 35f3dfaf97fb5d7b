"""Commands of the Budget aggregate."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, model_validator

from events.base import Command, Label
from events.catalog.budget import BudgetScope
from events.ids import Id
from events.money import UsdAmount

__all__ = ["CloseBudget", "CreateBudget", "RaiseBudget", "RecordBudgetThreshold"]


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Paris)"
                         ) from None
    return name


TimeZone = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_zone)]
Thresholds = Annotated[tuple[Annotated[int, Field(ge=1, le=1000)], ...],
                       Field(min_length=1, max_length=10)]

MaxCost = UsdAmount
MaxTokens = Annotated[int, Field(ge=0, le=10**15)]


class _BudgetCommand(Command):
    aggregate: ClassVar[str] = "budget"
    id_field: ClassVar[str] = "budget_id"


class CreateBudget(_BudgetCommand):
    """Create a shared budget; an absent bound is unlimited."""

    subject: ClassVar[str] = "budget.create"
    budget_id: Id | None = None
    name: Label
    max_cost_usd: MaxCost | None = None
    max_tokens: MaxTokens | None = None
    scope: BudgetScope = "shared"
    period: Literal["day"] | None = None
    """``day``: the bounds apply to each day of ``time_zone`` (a ``day`` scope always is)."""
    time_zone: TimeZone = "UTC"
    run_id: Id | None = None
    """The run a ``run`` budget bounds."""
    session_id: Id | None = None
    """The session a ``session`` budget bounds."""
    thresholds: Thresholds | None = None
    """Percentages whose crossing is an alert (default 50, 80, 100)."""

    @model_validator(mode="after")
    def _scope_fits(self) -> CreateBudget:
        if (self.scope == "run") != (self.run_id is not None):
            raise ValueError("run_id is given exactly when scope is run")
        if (self.scope == "session") != (self.session_id is not None):
            raise ValueError("session_id is given exactly when scope is session")
        return self


class RaiseBudget(_BudgetCommand):
    """Raise a budget's bounds (an absent one stays as it is); an exhausted budget reopens."""

    subject: ClassVar[str] = "budget.raise"
    budget_id: Id
    max_cost_usd: MaxCost | None = None
    max_tokens: MaxTokens | None = None


class CloseBudget(_BudgetCommand):
    """Close a budget: runs on it get no new work."""

    subject: ClassVar[str] = "budget.close"
    budget_id: Id


class RecordBudgetThreshold(_BudgetCommand):
    """Record that settled spending crossed a threshold (the alert policy sends it)."""

    subject: ClassVar[str] = "budget.record_threshold"
    budget_id: Id
    threshold: Annotated[int, Field(ge=1, le=1000)]
    period: Annotated[str, Field(max_length=10)] = ""
    tokens: Annotated[int, Field(ge=0)]
    cost_usd: UsdAmount
