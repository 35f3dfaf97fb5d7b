"""Shared budgets: charges, crossing a bound, raising and closing."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from events.commands.budget import CloseBudget, CreateBudget, RaiseBudget
from events.commands.run import CreateRun
from events.errors import ErrorCode
from services.domain import DomainError
from services.domain.budget import BudgetState, charge, decide

from .support import ctx, fold, play, types

CREATE = CreateBudget(budget_id="team", name="team", max_cost_usd=10.0, max_tokens=1000)


def _active() -> BudgetState:
    state: BudgetState = play("budget", [CREATE])
    return state


def _refused(call: Any, *args: Any) -> DomainError:
    with pytest.raises(DomainError) as refused:
        call(*args)
    return refused.value


def test_create() -> None:
    state = _active()
    assert (state.state, state.max_cost_usd, state.max_tokens) == ("active", 10.0, 1000)
    state.require_room()
    assert _refused(decide, state, CREATE, ctx()).code == ErrorCode.ALREADY_EXISTS


def test_a_zero_budget_is_exhausted_at_once() -> None:
    events = decide(None, CREATE.model_copy(update={"max_tokens": 0}), ctx())
    assert types(events) == ["BudgetCreated", "BudgetExhausted"]


def test_charges_below_the_bounds() -> None:
    state = fold("budget", charge(_active(), "r1", 100, 1.0, ctx()), _active())
    assert (state.state, state.tokens, state.cost_usd) == ("active", 100, 1.0)


@pytest.mark.parametrize(("tokens", "cost"), [(1000, 0.0), (0, 10.0), (5000, 50.0)])
def test_a_charge_reaching_a_bound_exhausts(tokens: int, cost: float) -> None:
    events = charge(_active(), "r1", tokens, cost, ctx())
    assert types(events) == ["BudgetCharged", "BudgetExhausted"]
    state = fold("budget", events, _active())
    assert state.state == "exhausted"
    refused = _refused(state.require_room)
    assert (refused.code, refused.message) == (ErrorCode.BUDGET_EXCEEDED,
                                               "budget team is exhausted")


def test_charges_after_exhaustion_are_still_recorded() -> None:
    state = fold("budget", charge(_active(), "r1", 1000, 0.0, ctx()), _active())
    events = charge(state, "r2", 5, 0.1, ctx())
    assert types(events) == ["BudgetCharged"]
    assert fold("budget", events, state).tokens == 1005


def test_concurrent_charges_add_up_exactly() -> None:
    state = _active()
    for _ in range(10):
        state = fold("budget", charge(state, "r1", 99, 0.99, ctx()), state)
    assert (state.tokens, state.state) == (990, "active")
    state = fold("budget", charge(state, "r2", 10, 0.0, ctx()), state)
    assert state.state == "exhausted"


def test_charge_refusals() -> None:
    assert _refused(charge, None, "r1", 1, 0.0, ctx()).code == ErrorCode.NOT_FOUND
    assert _refused(charge, _active(), "r1", -1, 0.0, ctx()).code == ErrorCode.VALIDATION_FAILED
    assert _refused(charge, _active(), "r1", 1, float("nan"), ctx()).code == \
        ErrorCode.VALIDATION_FAILED


def test_raise_reopens_an_exhausted_budget() -> None:
    state = fold("budget", charge(_active(), "r1", 1000, 0.0, ctx()), _active())
    raised = play("budget", [RaiseBudget(budget_id="team", max_tokens=2000)], state=state)
    assert (raised.state, raised.max_tokens, raised.max_cost_usd) == ("active", 2000, 10.0)
    raised.require_room()


def test_raise_that_is_not_enough_stays_exhausted() -> None:
    state = fold("budget", charge(_active(), "r1", 1000, 20.0, ctx()), _active())
    events = decide(state, RaiseBudget(budget_id="team", max_tokens=5000), ctx())
    assert types(events) == ["BudgetRaised", "BudgetExhausted"]


@pytest.mark.parametrize("command", [
    RaiseBudget(budget_id="team"),
    RaiseBudget(budget_id="team", max_tokens=999),
    RaiseBudget(budget_id="team", max_cost_usd=9.0),
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
    assert types(charge(closed, "r1", 1, 0.01, ctx())) == ["BudgetCharged"]


def test_unknown_budget() -> None:
    refused = _refused(decide, None, CloseBudget(budget_id="nope"), ctx())
    assert (refused.code, refused.message) == (ErrorCode.NOT_FOUND, "budget nope does not exist")


def test_a_run_carries_its_budget_id() -> None:
    state = play("run", [CreateRun(run_id="r1", name="n", budget_id="team")])
    assert state.budget_id == "team"
