"""Commands of the Budget aggregate."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from events.base import Command, Label
from events.ids import Id
from events.money import UsdAmount

__all__ = ["CloseBudget", "CreateBudget", "RaiseBudget"]

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
