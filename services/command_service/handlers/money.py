"""Model prices, shared budgets and circuit breakers: the providers' side of the house."""

from __future__ import annotations

from events.catalog.breaker import BreakerHalfOpened
from events.commands.breaker import (
    AcquireBreaker,
    ConfigureBreaker,
    RecordBreakerOutcome,
    ResetBreaker,
)
from events.commands.budget import CloseBudget, CreateBudget, RaiseBudget
from events.commands.model import RegisterModel
from events.commands.queue import ConfigureQueue
from services.domain import breaker, budget, model, queue

from ..repositories import CommandRecord
from ..routes import AnyRoute, Outcome, ReplyFields, Route
from ..unit_of_work import Committed, UnitOfWork
from .common import on_target

__all__ = ["ROUTES"]


async def acquire_breaker(uow: UnitOfWork, command: AcquireBreaker) -> Outcome:
    """Decides whether the caller may call the guarded provider; the reply says ``allowed``."""
    repo = uow.repos.breakers
    loaded = await uow.get(repo, command.breaker_id)
    before = loaded.state
    events = breaker.decide(before, command, uow.context())
    uow.record(repo, loaded, events)
    allowed = breaker.acquire_allowed(before, events, uow.context())

    async def extra(committed: Committed | None) -> ReplyFields:
        del committed
        state = repo.cached(command.breaker_id)
        name = state.state.state if state is not None and state.state is not None else "closed"
        return {"allowed": allowed, "state": name}

    return Outcome(loaded, extra)


async def replay_acquire(uow: UnitOfWork, command: AcquireBreaker, record: CommandRecord
                         ) -> ReplyFields:
    """A retried acquire that wrote ``BreakerHalfOpened`` was the one probe let through."""
    loaded = await uow.get(uow.repos.breakers, command.breaker_id)
    state = loaded.state.state if loaded.state is not None else "closed"
    return {"allowed": BreakerHalfOpened.type_name() in record.event_types, "state": state}


_on_breaker = on_target(lambda repos: repos.breakers, breaker.decide)
_on_budget = on_target(lambda repos: repos.budgets, budget.decide)

ROUTES: tuple[AnyRoute, ...] = (
    Route(RegisterModel, on_target(lambda repos: repos.models, model.decide)),
    Route(ConfigureQueue, on_target(lambda repos: repos.queues, queue.decide)),
    Route(CreateBudget, _on_budget),
    Route(RaiseBudget, _on_budget),
    Route(CloseBudget, _on_budget),
    Route(AcquireBreaker, acquire_breaker, replay=replay_acquire),
    Route(ConfigureBreaker, _on_breaker),
    Route(RecordBreakerOutcome, _on_breaker),
    Route(ResetBreaker, _on_breaker),
)
