"""Shared budgets: charges (their runs' usage), crossing a bound, raising and closing."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from events import utc_now
from events.catalog.budget import BudgetCharged
from events.commands.budget import CloseBudget, CreateBudget, RaiseBudget
from events.commands.run import CreateRun
from events.errors import ErrorCode
from services.domain import DomainError
from services.domain.budget import BudgetState, decide
from services.domain.charges import Ledgers, Usage, money

from .support import ctx, fold, play, types

CREATE = CreateBudget(budget_id="team", name="team", max_cost_usd=Decimal(10), max_tokens=1000)


def _active() -> BudgetState:
    state: BudgetState = play("budget", [CREATE])
    return state


def _refused(call: Any, *args: Any) -> DomainError:
    with pytest.raises(DomainError) as refused:
        call(*args)
    return refused.value


def test_create() -> None:
    state = _active()
    assert (state.state, state.max_cost_usd, state.max_tokens) == ("active", Decimal(10), 1000)
    state.require_room()
    assert _refused(decide, state, CREATE, ctx()).code == ErrorCode.ALREADY_EXISTS


def test_a_zero_budget_is_exhausted_at_once() -> None:
    events = decide(None, CREATE.model_copy(update={"max_tokens": 0}), ctx())
    assert types(events) == ["BudgetCreated", "BudgetExhausted"]


def _spent(state: BudgetState, *charges: tuple[int, float]) -> BudgetState:
    """The budget as the service sees it: with its runs' usage counted."""
    ledgers = Ledgers()
    for seq, (tokens, amount) in enumerate(charges, start=1):
        usage = Usage(tokens, money(amount), (f"budget:{state.budget_id}",))
        ledgers.used(usage, seq)
        ledgers.used(usage, seq)  # the log's copy of an own write
    return ledgers.view(state, utc_now())


def test_charges_below_the_bounds() -> None:
    state = _spent(_active(), (100, 1.0))
    assert (state.state, state.tokens, state.cost_usd, state.reached()) == (
        "active", 100, Decimal(1), False)
    state.require_room()


@pytest.mark.parametrize(("tokens", "cost"), [(1000, 0.0), (0, 10.0), (5000, 50.0)])
def test_charges_reaching_a_bound_exhaust(tokens: int, cost: float) -> None:
    state = _spent(_active(), (tokens, cost))
    assert state.reached()
    refused = _refused(state.require_room)
    assert (refused.code, refused.message) == (ErrorCode.BUDGET_EXCEEDED,
                                               "budget team is exhausted")


def test_concurrent_charges_add_up_exactly() -> None:
    state = _spent(_active(), *[(99, 0.99)] * 10)
    assert (state.tokens, state.cost_usd, state.reached()) == (990, Decimal("9.9"), False)
    assert _spent(_active(), *[(99, 0.99)] * 10, (10, 0.0)).reached()


def test_older_logs_charges_fold_into_the_budget() -> None:
    charged = BudgetCharged(budget_id="team", run_id="r1", tokens=600, cost_usd=Decimal(1))
    state = fold("budget", [charged], _active())
    assert (state.tokens, state.state) == (600, "active")
    assert _spent(state, (400, 0.0)).reached()


def test_raise_reopens_an_exhausted_budget() -> None:
    exhausted = fold("budget", decide(None, CREATE.model_copy(update={"max_tokens": 0}),
                                      ctx()))
    assert exhausted.state == "exhausted"
    raised = play("budget", [RaiseBudget(budget_id="team", max_tokens=2000)], state=exhausted)
    assert (raised.state, raised.max_tokens, raised.max_cost_usd) == ("active", 2000, Decimal(10))
    _spent(raised, (1000, 0.0)).require_room()


def test_raise_that_is_not_enough_stays_exhausted() -> None:
    raised = play("budget", [RaiseBudget(budget_id="team", max_tokens=5000)], state=_active())
    assert not _spent(raised, (1000, 0.0)).reached()
    assert _spent(raised, (1000, 20.0)).reached()  # its cost bound (10.0) is still passed


@pytest.mark.parametrize("command", [
    RaiseBudget(budget_id="team"),
    RaiseBudget(budget_id="team", max_tokens=999),
    RaiseBudget(budget_id="team", max_cost_usd=Decimal(9)),
])
def test_raise_cannot_lower(command: RaiseBudget) -> None:
    assert _refused(decide, _active(), command, ctx()).code == ErrorCode.VALIDATION_FAILED


def test_raise_an_unlimited_bound() -> None:
    unlimited = replace(_active(), max_tokens=None)
    refused = _refused(decide, unlimited, RaiseBudget(budget_id="team", max_tokens=5), ctx())
    assert refused.message == "budget team max_tokens is unlimited; raise cannot lower it to 5"


def test_close() -> None:
    closed = play("budget", [CloseBudget(budget_id="team")], state=_active())
    assert closed.state == "closed"
    assert _refused(closed.require_room).message == "budget team is closed"
    assert _refused(decide, closed, CloseBudget(budget_id="team"), ctx()).code == \
        ErrorCode.INVALID_TRANSITION
    assert _refused(decide, closed, RaiseBudget(budget_id="team", max_tokens=5000),
                    ctx()).code == ErrorCode.INVALID_TRANSITION


def test_unknown_budget() -> None:
    refused = _refused(decide, None, CloseBudget(budget_id="nope"), ctx())
    assert (refused.code, refused.message) == (ErrorCode.NOT_FOUND, "budget nope does not exist")


def test_a_run_carries_its_budget_id() -> None:
    state = play("run", [CreateRun(run_id="r1", name="n", budget_id="team")])
    assert state.budget_id == "team"
