"""Charges to shared budgets: a budget's spending is the sum of its runs' usage.

``UsageRecorded`` names the run's shared budget, so one event charges both the run and
the budget; nothing keeps a running total that could drift from the usage itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .budget import BudgetState

__all__ = ["SpendBoard", "Spent"]


@dataclass(frozen=True, slots=True)
class Spent:
    """Tokens and cost charged to one budget."""

    tokens: int = 0
    cost_usd: float = 0.0


class SpendBoard:
    """What every shared budget has been charged, folded from its runs' usage."""

    def __init__(self) -> None:
        self._spent: dict[str, Spent] = {}

    def charge(self, budget_id: str, tokens: int, cost_usd: float) -> None:
        """Adds one usage of a run drawing on ``budget_id``."""
        spent = self._spent.get(budget_id, Spent())
        self._spent[budget_id] = Spent(spent.tokens + tokens, spent.cost_usd + cost_usd)

    def spent(self, budget_id: str) -> Spent:
        """What ``budget_id`` has been charged so far."""
        return self._spent.get(budget_id, Spent())

    def view(self, budget: BudgetState) -> BudgetState:
        """The budget with its runs' usage counted (on top of charges older logs recorded)."""
        spent = self.spent(budget.budget_id)
        return replace(budget, tokens=budget.tokens + spent.tokens,
                       cost_usd=budget.cost_usd + spent.cost_usd)
