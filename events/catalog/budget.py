"""Events of the Budget aggregate: a spending limit shared by the runs that name it."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from events.base import DomainEvent, Label
from events.ids import Id

__all__ = [
    "BudgetCharged",
    "BudgetClosed",
    "BudgetCreated",
    "BudgetExhausted",
    "BudgetRaised",
]


class _BudgetEvent(DomainEvent):
    aggregate: ClassVar[str] = "budget"

    budget_id: Id


class BudgetCreated(_BudgetEvent):
    """A budget was created, ``active``; an absent bound is unlimited."""

    name: Label
    max_cost_usd: float | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)


class BudgetRaised(_BudgetEvent):
    """The budget's bounds are now these (``None``: unlimited)."""

    max_cost_usd: float | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)


class BudgetCharged(_BudgetEvent):
    """(Older logs.) A run spent this (appended with the run's ``UsageRecorded``)."""

    run_id: Id
    tokens: int = Field(ge=0)
    cost_usd: float = Field(ge=0)


class BudgetExhausted(_BudgetEvent):
    """Spending reached a bound; runs on this budget get no new work."""

    tokens: int
    cost_usd: float


class BudgetClosed(_BudgetEvent):
    """The budget was closed; it accepts no new work, only charges already incurred."""
