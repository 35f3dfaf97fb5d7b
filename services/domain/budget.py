"""The Budget state machine: a spending limit that several runs draw on."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TypeVar

from events.base import Command, DomainEvent
from events.catalog.budget import (
    DEFAULT_THRESHOLDS,
    BudgetCharged,
    BudgetClosed,
    BudgetCreated,
    BudgetExhausted,
    BudgetRaised,
    BudgetThresholdCrossed,
)
from events.commands.budget import CloseBudget, CreateBudget, RaiseBudget, RecordBudgetThreshold
from events.errors import ErrorCode
from events.money import ZERO_USD

from .checks import action_of
from .context import Context
from .machine import DomainError, InvalidHistory, TransitionTable

__all__ = ["TABLE", "BudgetState", "decide", "evolve"]

_N = TypeVar("_N", int, Decimal)

TABLE = TransitionTable(
    aggregate="budget",
    states=("active", "exhausted", "closed"),
    edges={
        (None, "BudgetCreated"): "active",
        ("active", "BudgetRaised"): "active",
        ("exhausted", "BudgetRaised"): "active",
        ("active", "BudgetExhausted"): "exhausted",
        ("active", "BudgetClosed"): "closed",
        ("exhausted", "BudgetClosed"): "closed",
        # A charge is money already spent: it is recorded whatever the state.
        **{(s, "BudgetCharged"): s for s in ("active", "exhausted", "closed")},
        # So is a crossing of an alert threshold.
        **{(s, "BudgetThresholdCrossed"): s for s in ("active", "exhausted", "closed")},
    },
    terminal=frozenset({"closed"}),
)


@dataclass(frozen=True, slots=True)
class BudgetState:
    """A budget's bounds (None: unlimited) and what has been charged to it."""

    budget_id: str
    name: str
    state: str
    max_cost_usd: Decimal | None = None
    max_tokens: int | None = None
    tokens: int = 0
    cost_usd: Decimal = ZERO_USD
    scope: str = "shared"
    """shared (runs naming it), run, session or day (everything)."""
    period: str | None = None
    """``day``: the bounds apply to each day of ``time_zone``."""
    time_zone: str = "UTC"
    run_id: str | None = None
    session_id: str | None = None
    thresholds: tuple[int, ...] = (50, 80, 100)
    crossed: frozenset[tuple[str, int]] = frozenset()
    """(period, threshold) pairs already recorded as crossed."""

    def reached(self) -> bool:
        """Whether spending has reached a bound: nothing is left."""
        over_tokens = self.max_tokens is not None and self.tokens >= self.max_tokens
        over_cost = self.max_cost_usd is not None and self.cost_usd >= self.max_cost_usd
        return over_tokens or over_cost

    def require_room(self) -> None:
        """Refuses new work for runs on a closed, exhausted or fully spent budget."""
        if self.state != "active" or self.reached():
            raise DomainError(
                ErrorCode.BUDGET_EXCEEDED,
                f"budget {self.budget_id} is {'exhausted' if self.reached() else self.state}",
                {"tokens": self.tokens, "cost_usd": self.cost_usd,
                 "max_tokens": self.max_tokens, "max_cost_usd": self.max_cost_usd},
            )


def decide(state: BudgetState | None, command: Command, ctx: Context) -> list[DomainEvent]:
    """Returns the events a budget command produces, or raises ``DomainError``."""
    if isinstance(command, CreateBudget):
        return _create(state, command)
    if state is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"budget {command.target_id()} does not exist")
    if isinstance(command, RaiseBudget):
        return _raise(state, command)
    if isinstance(command, CloseBudget):
        TABLE.require(state.state, "BudgetClosed", action_of(command), state.budget_id)
        return [BudgetClosed(budget_id=state.budget_id)]
    if isinstance(command, RecordBudgetThreshold):
        return _threshold(state, command)
    raise TypeError(f"not a budget command: {type(command).__name__}")


def _create(state: BudgetState | None, command: CreateBudget) -> list[DomainEvent]:
    if state is not None:
        raise DomainError(ErrorCode.ALREADY_EXISTS, f"budget {state.budget_id} already exists")
    if command.budget_id is None:
        raise ValueError("the service assigns a budget_id before deciding")
    created = BudgetCreated(
        budget_id=command.budget_id, name=command.name, max_cost_usd=command.max_cost_usd,
        max_tokens=command.max_tokens, scope=command.scope,
        period="day" if command.scope == "day" else command.period,
        time_zone=command.time_zone, run_id=command.run_id, session_id=command.session_id,
        thresholds=tuple(sorted(set(command.thresholds or DEFAULT_THRESHOLDS))))
    return [created, *_exhausted_if_reached(evolve(None, created))]


def _raise(state: BudgetState, command: RaiseBudget) -> list[DomainEvent]:
    TABLE.require(state.state, "BudgetRaised", action_of(command), state.budget_id)
    if command.max_cost_usd is None and command.max_tokens is None:
        raise DomainError(ErrorCode.VALIDATION_FAILED, "budget.raise needs a bound to raise")
    max_cost = _raised(state.budget_id, "max_cost_usd", state.max_cost_usd, command.max_cost_usd)
    max_tokens = _raised(state.budget_id, "max_tokens", state.max_tokens, command.max_tokens)
    raised = BudgetRaised(budget_id=state.budget_id, max_cost_usd=max_cost, max_tokens=max_tokens)
    return [raised, *_exhausted_if_reached(evolve(state, raised))]


def _threshold(state: BudgetState, command: RecordBudgetThreshold) -> list[DomainEvent]:
    """Once per threshold and period: a repeat (another replica's policy) writes nothing."""
    if (command.period, command.threshold) in state.crossed:
        return []
    return [BudgetThresholdCrossed(budget_id=state.budget_id, threshold=command.threshold,
                                   period=command.period, tokens=command.tokens,
                                   cost_usd=command.cost_usd)]


def _raised(budget_id: str, name: str, current: _N | None, new: _N | None) -> _N | None:
    if new is None:
        return current
    if current is None or new < current:
        limit = "unlimited" if current is None else current
        raise DomainError(ErrorCode.VALIDATION_FAILED,
                          f"budget {budget_id} {name} is {limit}; raise cannot lower it to {new}")
    return new


def _exhausted_if_reached(state: BudgetState) -> list[DomainEvent]:
    if state.state != "active" or not state.reached():
        return []
    return [BudgetExhausted(budget_id=state.budget_id, tokens=state.tokens,
                            cost_usd=state.cost_usd)]


def evolve(state: BudgetState | None, event: DomainEvent) -> BudgetState:
    """Returns the budget's state after ``event`` (which must fit the table)."""
    target = TABLE.next_state(state.state if state else None, event.type_name())
    if isinstance(event, BudgetCreated):
        return BudgetState(budget_id=event.budget_id, name=event.name, state=target,
                           max_cost_usd=event.max_cost_usd, max_tokens=event.max_tokens,
                           scope=event.scope, period=event.period, time_zone=event.time_zone,
                           run_id=event.run_id, session_id=event.session_id,
                           thresholds=event.thresholds)
    if state is None:
        raise InvalidHistory(f"budget: {event.type_name()} before BudgetCreated")
    if isinstance(event, BudgetCharged):
        return replace(state, tokens=state.tokens + event.tokens,
                       cost_usd=state.cost_usd + event.cost_usd)
    if isinstance(event, BudgetThresholdCrossed):
        return replace(state, crossed=state.crossed | {(event.period, event.threshold)})
    if isinstance(event, BudgetRaised):
        return replace(state, state=target, max_cost_usd=event.max_cost_usd,
                       max_tokens=event.max_tokens)
    return replace(state, state=target)
