"""Run commands, and ``usage.record`` (usage is a fact about a run)."""

from __future__ import annotations

from events.base import DomainEvent
from events.catalog.run import UsageRecorded
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
from events.ids import model_aggregate_id
from services.domain import DomainError, model, run

from ..routes import AnyRoute, Outcome, Route, target_of
from ..unit_of_work import Committed, UnitOfWork
from .common import on_target

__all__ = ["ROUTES"]


async def create_run(uow: UnitOfWork, command: CreateRun) -> Outcome:
    """Creates a run; a ``budget_id`` must name a budget, or its usage could never be charged."""
    loaded = await uow.get(uow.repos.runs, target_of(command))
    if command.budget_id and (await uow.get(uow.repos.budgets, command.budget_id)).state is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"budget {command.budget_id} does not exist; "
                          "create it with budget.create", {"budget_id": command.budget_id})
    uow.record(uow.repos.runs, loaded, run.decide(loaded.state, command, uow.context()))
    return Outcome(loaded)


async def record_usage(uow: UnitOfWork, command: RecordUsage) -> Outcome:
    """Prices one model call at the price in effect now; one event charges run and budget."""
    loaded = await uow.get(uow.repos.runs, command.run_id)
    prices = await uow.get(uow.repos.models, model_aggregate_id(command.model))
    price = model.price_at(prices.state, uow.now)
    if price is None:
        raise DomainError(ErrorCode.NOT_FOUND,
                          f"model {command.model} has no price in effect; register it with "
                          "model.register", {"model": command.model})
    events = run.decide(loaded.state, command, uow.context(price=price))
    uow.record(uow.repos.runs, loaded, events)
    uow.after_commit.append(lambda committed: _charge_budget(uow, events, committed))
    return Outcome(loaded)


async def _charge_budget(uow: UnitOfWork, events: list[DomainEvent], committed: Committed
                         ) -> None:
    """This replica's next decisions see its own usage on the shared budget at once."""
    for event, written in zip(events, committed.written, strict=True):
        if isinstance(event, UsageRecorded) and event.budget_id is not None:
            uow.repos.spend.charge(written.seq, event.budget_id,
                                   event.tokens_in + event.tokens_out, event.cost_usd)


_lifecycle = on_target(lambda repos: repos.runs, run.decide)

ROUTES: tuple[AnyRoute, ...] = (
    Route(CreateRun, create_run),
    Route(StartRun, _lifecycle),
    Route(SucceedRun, _lifecycle),
    Route(FailRun, _lifecycle),
    Route(CancelRun, _lifecycle),
    Route(ConfigureRun, _lifecycle),
    Route(RecordUsage, record_usage),
)
