"""What a run may still spend: the one place "budget left" is computed.

Routing (``model.recommend``) asks it before choosing a model; every limit that applies
to the run is counted (its own budget and the shared budget it draws on), and the
tightest one wins.
"""

from __future__ import annotations

from dataclasses import dataclass

from .budget import BudgetState
from .run import RunState

__all__ = ["BudgetLeft", "budget_left"]


@dataclass(frozen=True, slots=True)
class BudgetLeft:
    """Tokens and USD a run may still spend (None: no limit), and which limit binds."""

    tokens: int | None = None
    cost_usd: float | None = None
    binding: str | None = None
    """The limit that leaves the least, e.g. ``run r1 max_cost_usd``."""

    def fits(self, tokens: int, cost_usd: float) -> bool:
        """Whether a call of ``tokens`` costing ``cost_usd`` fits in what is left."""
        fits_tokens = self.tokens is None or tokens <= self.tokens
        return fits_tokens and (self.cost_usd is None or cost_usd <= self.cost_usd)


_NO_LIMIT = BudgetLeft()


def budget_left(run: RunState | None, shared: BudgetState | None) -> BudgetLeft:
    """The room left under the run's own budget and its shared budget (spend included)."""
    left = _NO_LIMIT
    if run is not None and run.budget is not None:
        budget = run.budget
        left = _tighter(left, _room(budget.max_tokens, run.tokens),
                        _room(budget.max_cost_usd, run.cost_usd), f"run {run.run_id}")
    if shared is not None:
        tokens = _room(shared.max_tokens, shared.tokens)
        cost = _room(shared.max_cost_usd, shared.cost_usd)
        if shared.state != "active":
            tokens, cost = 0, 0.0
        left = _tighter(left, tokens, cost, f"budget {shared.budget_id}")
    return left


def _room(limit: float | None, spent: float) -> float | None:
    return None if limit is None else max(limit - spent, 0)


def _tighter(left: BudgetLeft, tokens: float | None, cost: float | None, scope: str
             ) -> BudgetLeft:
    new_tokens, new_cost, binding = left.tokens, left.cost_usd, left.binding
    if tokens is not None and (new_tokens is None or tokens < new_tokens):
        new_tokens, binding = int(tokens), f"{scope} max_tokens"
    if cost is not None and (new_cost is None or cost < new_cost):
        new_cost, binding = float(cost), f"{scope} max_cost_usd"
    return BudgetLeft(new_tokens, new_cost, binding)
