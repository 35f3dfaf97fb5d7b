"""What a run may still spend: the one place "budget left" is computed.

Routing (``model.recommend``) asks it before choosing a model; every limit that applies
to the run is counted (its own budget and the shared budget it draws on), and the
tightest one wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from events.money import ZERO_USD

from .budget import BudgetState
from .run import RunState

__all__ = ["BudgetLeft", "budget_left"]


@dataclass(frozen=True, slots=True)
class BudgetLeft:
    """Tokens and USD a run may still spend (None: no limit), and which limit binds."""

    tokens: int | None = None
    cost_usd: Decimal | None = None
    binding: str | None = None
    """The limit that leaves the least, e.g. ``run r1 max_cost_usd``."""

    def fits(self, tokens: int, cost_usd: Decimal) -> bool:
        """Whether a call of ``tokens`` costing ``cost_usd`` fits in what is left."""
        fits_tokens = self.tokens is None or tokens <= self.tokens
        return fits_tokens and (self.cost_usd is None or cost_usd <= self.cost_usd)


_NO_LIMIT = BudgetLeft()


def budget_left(run: RunState | None, shared: BudgetState | None) -> BudgetLeft:
    """The room left under the run's own budget and its shared budget (spend included)."""
    left = _NO_LIMIT
    if run is not None and run.budget is not None:
        budget = run.budget
        left = _tighter(left, _tokens_left(budget.max_tokens, run.tokens),
                        _usd_left(budget.max_cost_usd, run.cost_usd), f"run {run.run_id}")
    if shared is not None:
        tokens = _tokens_left(shared.max_tokens, shared.tokens)
        cost = _usd_left(shared.max_cost_usd, shared.cost_usd)
        if shared.state != "active":
            tokens, cost = 0, ZERO_USD
        left = _tighter(left, tokens, cost, f"budget {shared.budget_id}")
    return left


def _tokens_left(limit: int | None, spent: int) -> int | None:
    return None if limit is None else max(limit - spent, 0)


def _usd_left(limit: Decimal | None, spent: Decimal) -> Decimal | None:
    return None if limit is None else max(limit - spent, ZERO_USD)


def _tighter(left: BudgetLeft, tokens: int | None, cost: Decimal | None, scope: str
             ) -> BudgetLeft:
    new_tokens, new_cost, binding = left.tokens, left.cost_usd, left.binding
    if tokens is not None and (new_tokens is None or tokens < new_tokens):
        new_tokens, binding = tokens, f"{scope} max_tokens"
    if cost is not None and (new_cost is None or cost < new_cost):
        new_cost, binding = cost, f"{scope} max_cost_usd"
    return BudgetLeft(new_tokens, new_cost, binding)
