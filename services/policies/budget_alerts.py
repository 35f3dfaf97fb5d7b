"""Records a budget's crossing of each alert threshold (50 / 80 / 100 % by default), once
per threshold and period.

It watches settled spending: each usage names the ledgers it counts on, and after it a
budget whose settled tokens or cost reached a threshold of a bound gets one
``budget.record_threshold``. The command id names the budget, period and threshold, and
the budget itself refuses a repeat, so replicas and restarts record each crossing once.
"""

from __future__ import annotations

from decimal import Decimal

from events.codec import StoredEvent
from events.commands.budget import RecordBudgetThreshold
from services.domain.budget import BudgetState
from services.domain.charges import Ledger, Ledgers, money

from .base import CommandSender, Policy
from .ids import policy_command_id

__all__ = ["BudgetAlertPolicy", "crossed"]

_HUNDRED = Decimal(100)


def crossed(budget: BudgetState, ledger: Ledger) -> list[int]:
    """The thresholds (percent of a bound) the ledger's settled spending has reached."""
    used = Decimal(0)
    if budget.max_tokens:
        used = Decimal(ledger.settled_tokens) * _HUNDRED / budget.max_tokens
    if budget.max_cost_usd:
        used = max(used, ledger.settled_cost_usd * _HUNDRED / money(budget.max_cost_usd))
    return [t for t in budget.thresholds if used >= t]


class BudgetAlertPolicy(Policy):
    """After usage, records every threshold a budget's current period has newly crossed."""

    name = "budget-alerts"
    aggregates = frozenset({"run"})

    def __init__(self, sender: CommandSender, ledgers: Ledgers, interval_s: float = 1.0) -> None:
        super().__init__(sender, interval_s)
        self._ledgers = ledgers
        self._touched: set[str] = set()

    def note(self, stored: StoredEvent) -> bool:
        """A usage: the budgets it counts on may have crossed a threshold."""
        if stored.type != "UsageRecorded":
            return False
        scopes = stored.data.get("scopes") or []
        touched = {str(s) for s in scopes if str(s).startswith("budget:")}
        self._touched |= touched
        return bool(touched)

    async def act(self) -> int:
        """Records the crossings of every budget touched since the last round."""
        touched, self._touched = self._touched, set()
        return await self.each(sorted(touched), self._check, self._touched.update)

    async def _check(self, scope: str) -> int:
        budget_id, _, period = scope.removeprefix("budget:").partition("@")
        budget = self._ledgers.budget(budget_id)
        if budget is None:
            return 0
        ledger = self._ledgers.ledger(scope)
        recorded = 0
        for threshold in crossed(budget, ledger):
            if (period, threshold) in budget.crossed:
                continue
            recorded += await self.issue(RecordBudgetThreshold(
                budget_id=budget_id, threshold=threshold, period=period,
                tokens=ledger.settled_tokens, cost_usd=ledger.settled_cost_usd,
                command_id=policy_command_id("threshold", budget_id, period, threshold)))
        return recorded
