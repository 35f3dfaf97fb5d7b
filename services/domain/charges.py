"""Charges to shared budgets: a budget's spending is the sum of its runs' usage.

``UsageRecorded`` names the run's shared budget, so one event charges both the run and
the budget; nothing keeps a running total that could drift from the usage itself.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from decimal import Decimal

from events.money import ZERO_USD

from .budget import BudgetState

__all__ = ["SpendBoard", "Spent"]


@dataclass(frozen=True, slots=True)
class Spent:
    """Tokens and cost charged to one budget."""

    tokens: int = 0
    cost_usd: Decimal = ZERO_USD


_SEEN_KEPT = 100_000


class SpendBoard:
    """What every shared budget has been charged, folded from its runs' usage.

    A usage may reach it twice, as this replica's own write and again from the log:
    each is counted once, by its sequence.
    """

    def __init__(self) -> None:
        self._spent: dict[str, Spent] = {}
        self._seen: OrderedDict[int, None] = OrderedDict()

    def charge(self, seq: int, budget_id: str, tokens: int, cost_usd: Decimal) -> None:
        """Adds the usage at ``seq`` of a run drawing on ``budget_id`` (once)."""
        if seq in self._seen:
            return
        self._seen[seq] = None
        while len(self._seen) > _SEEN_KEPT:
            self._seen.popitem(last=False)
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
