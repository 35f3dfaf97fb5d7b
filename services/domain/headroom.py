"""What a run may still spend: the one place "budget left" is computed.

Routing (``model.recommend``) asks it before choosing a model, on the very bounds a
reservation of the run is admitted against (``Ledgers.bounds``: its own budget or the
run default, a run-scoped, shared, session or day budget, the defaults), each less
what is settled and what live reservations hold on its scope; the tightest one wins.
It read only the run's own budget and its shared one, settled spending alone, and so
recommended calls the budget then refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from events.money import ZERO_USD

from .charges import Bound, Ledger

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


def budget_left(bounds: Iterable[Bound], ledger_of: Callable[[str], Ledger]) -> BudgetLeft:
    """The room left under every bound, each less its scope's settled and reserved
    spending (``ledger_of``: the ledger of a scope); a closed budget leaves none."""
    left = _NO_LIMIT
    for bound in bounds:
        ledger = ledger_of(bound.scope)
        if bound.closed:
            tokens: int | None = 0
            cost: Decimal | None = ZERO_USD
        else:
            tokens = _tokens_left(bound.max_tokens,
                                  ledger.settled_tokens + ledger.reserved_tokens)
            cost = _usd_left(bound.max_cost_usd,
                             ledger.settled_cost_usd + ledger.reserved_cost_usd)
        left = _tighter(left, tokens, cost, bound.label)
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
