"""The Run state machine: pending -> running -> succeeded | failed | cancelled."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from events.base import Command, DomainEvent
from events.catalog.run import (
    RunBudget,
    RunBudgetExceeded,
    RunCancelled,
    RunConfigured,
    RunCreated,
    RunFailed,
    RunStarted,
    RunSucceeded,
    UsageRecorded,
)
from events.commands.run import (
    CancelRun,
    ConfigureRun,
    CreateRun,
    FailRun,
    RecordUsage,
    StartRun,
    SucceedRun,
)
from events.errors import ErrorCode
from events.money import ZERO_USD, exact_usd

from .context import Context, Price
from .machine import DomainError, InvalidHistory, TransitionTable

__all__ = ["TABLE", "RunState", "cost_of", "decide", "evolve"]

_ENDED = ("succeeded", "failed", "cancelled")

TABLE = TransitionTable(
    aggregate="run",
    states=("pending", "running", "succeeded", "failed", "cancelled"),
    edges={
        (None, "RunCreated"): "pending",
        ("pending", "RunStarted"): "running",
        ("running", "RunSucceeded"): "succeeded",
        ("running", "RunFailed"): "failed",
        ("pending", "RunCancelled"): "cancelled",
        ("running", "RunCancelled"): "cancelled",
        # Usage is a fact about money already spent: it is kept even when it
        # arrives after the run ended, but never before the run started.
        **{(s, "UsageRecorded"): s for s in ("running", *_ENDED)},
        **{(s, "RunBudgetExceeded"): s for s in ("running", *_ENDED)},
        **{(s, "RunConfigured"): s for s in ("pending", "running")},
    },
    terminal=frozenset(_ENDED),
)


@dataclass(frozen=True, slots=True)
class RunState:
    """What the rules need to know about a run."""

    run_id: str
    state: str
    budget: RunBudget | None = None
    tokens: int = 0
    cost_usd: Decimal = ZERO_USD
    over_budget: bool = False
    budget_id: str | None = None
    """The shared budget the run also draws on; the service checks and charges it."""
    max_concurrency: int | None = None
    """At most this many of its tasks leased at once."""
    auto_end: bool = False
    """Whether the run ends by itself once all its workstreams and tasks are done."""
    cache_results: bool = False
    """Whether its tasks are keyed for the result cache by default."""
    cache_ttl_s: float | None = None
    session_id: str | None = None
    """The session the run belongs to (per-session budgets)."""

    def require_room(self) -> None:
        """Refuses new work for a run whose budget is spent."""
        if self.over_budget:
            raise DomainError(
                ErrorCode.BUDGET_EXCEEDED,
                f"run {self.run_id} has exceeded its budget",
                {"tokens": self.tokens, "cost_usd": self.cost_usd},
            )


def decide(state: RunState | None, command: Command, ctx: Context) -> list[DomainEvent]:
    """Returns the events a run command produces, or raises ``DomainError``."""
    if isinstance(command, CreateRun):
        return _create(state, command)
    if state is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"run {command.target_id()} does not exist")
    if isinstance(command, RecordUsage):
        return _record_usage(state, command, ctx)
    event = _simple_transition(state, command)
    TABLE.require(state.state, event.type_name(), command.subject.split(".")[1], state.run_id)
    return [event]


def _create(state: RunState | None, command: CreateRun) -> list[DomainEvent]:
    if state is not None:
        raise DomainError(ErrorCode.ALREADY_EXISTS, f"run {state.run_id} already exists")
    if command.run_id is None:
        raise ValueError("the service assigns a run_id before deciding")
    return [RunCreated(run_id=command.run_id, name=command.name, labels=command.labels,
                       budget=command.budget, budget_id=command.budget_id,
                       max_concurrency=command.max_concurrency, auto_end=command.auto_end,
                       cache_results=command.cache_results, cache_ttl_s=command.cache_ttl_s,
                       session_id=command.session_id)]


def _simple_transition(state: RunState, command: Command) -> DomainEvent:
    if isinstance(command, StartRun):
        return RunStarted(run_id=state.run_id)
    if isinstance(command, SucceedRun):
        return RunSucceeded(run_id=state.run_id)
    if isinstance(command, ConfigureRun):
        return RunConfigured(run_id=state.run_id, max_concurrency=command.max_concurrency)
    if isinstance(command, FailRun):
        return RunFailed(run_id=state.run_id, reason=command.reason)
    if isinstance(command, CancelRun):
        return RunCancelled(run_id=state.run_id, reason=command.reason)
    raise TypeError(f"not a run command: {type(command).__name__}")


def _record_usage(state: RunState, command: RecordUsage, ctx: Context) -> list[DomainEvent]:
    TABLE.require(state.state, "UsageRecorded", "usage.record", state.run_id)
    if ctx.price is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"model {command.model} has no price in effect")
    price = ctx.price
    usage = UsageRecorded(
        run_id=state.run_id, task_id=command.task_id, worker_id=command.worker_id,
        model=command.model, provider=price.provider, tokens_in=command.tokens_in,
        tokens_out=command.tokens_out, latency_ms=command.latency_ms, outcome=command.outcome,
        input_usd_per_mtok=price.input_usd_per_mtok,
        output_usd_per_mtok=price.output_usd_per_mtok,
        price_effective_from=price.effective_from.isoformat(), cost_usd=cost_of(command, price),
        budget_id=state.budget_id, cached_tokens_in=command.cached_tokens_in,
        cache_write_tokens_in=command.cache_write_tokens_in,
        cached_input_usd_per_mtok=price.cache_read if command.cached_tokens_in else None,
        cache_write_usd_per_mtok=price.cache_write if command.cache_write_tokens_in else None,
        provider_cost_usd=command.provider_cost_usd,
        reservation_id=command.reservation_id,
        session_id=command.session_id or state.session_id,
        scopes=ctx.facts.admission.scopes if ctx.facts.admission is not None else None,
    )
    return [usage]


_PER_MTOK = Decimal(1_000_000)


def cost_of(command: RecordUsage, price: Price) -> Decimal:
    """The call's cost: each token count at its own price, exact to twelve places."""
    total = (command.tokens_in * price.input_usd_per_mtok
             + command.tokens_out * price.output_usd_per_mtok
             + command.cached_tokens_in * price.cache_read
             + command.cache_write_tokens_in * price.cache_write)
    return exact_usd(total / _PER_MTOK)


def _exceeds(budget: RunBudget | None, tokens: int, cost_usd: Decimal) -> bool:
    if budget is None:
        return False
    over_tokens = budget.max_tokens is not None and tokens > budget.max_tokens
    over_cost = budget.max_cost_usd is not None and cost_usd > budget.max_cost_usd
    return over_tokens or over_cost


def evolve(state: RunState | None, event: DomainEvent) -> RunState:
    """Returns the run's state after ``event`` (which must fit the table)."""
    target = TABLE.next_state(state.state if state else None, event.type_name())
    if isinstance(event, RunCreated):
        return RunState(run_id=event.run_id, state=target, budget=event.budget,
                        budget_id=event.budget_id, max_concurrency=event.max_concurrency,
                        auto_end=event.auto_end, cache_results=event.cache_results,
                        cache_ttl_s=event.cache_ttl_s, session_id=event.session_id)
    if state is None:
        raise InvalidHistory(f"run: {event.type_name()} before RunCreated")
    if isinstance(event, UsageRecorded):
        # One replace (each introspects the fields): a usage is most of a run's events.
        tokens = state.tokens + event.tokens_in + event.tokens_out
        cost = state.cost_usd + event.cost_usd
        return replace(state, tokens=tokens, cost_usd=cost,
                       over_budget=state.over_budget or _exceeds(state.budget, tokens, cost))
    if isinstance(event, RunBudgetExceeded):
        return replace(state, over_budget=True)
    if isinstance(event, RunConfigured):
        return replace(state, max_concurrency=event.max_concurrency)
    return replace(state, state=target)
