"""Run commands, and ``usage.record`` (usage is a fact about a run)."""

from __future__ import annotations

from dataclasses import replace

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
from services.domain.context import Facts
from services.domain.reservation import Admission
from services.domain.run import RunState

from ..aggregates import usage_of_event
from ..routes import AnyRoute, Outcome, Route, target_of
from ..unit_of_work import Committed, UnitOfWork
from .common import on_target
from .reservations import payer_of

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
    """Prices one model call at the price in effect now; one event charges every scope.

    With a ``reservation_id`` it settles that reservation: the usage counts on the
    scopes the reservation held, and the reservation stops counting.
    """
    loaded = await uow.get(uow.repos.runs, command.run_id)
    prices = await uow.get(uow.repos.models, model_aggregate_id(command.model))
    price = model.price_at(prices.state, uow.now)
    if price is None:
        raise DomainError(ErrorCode.NOT_FOUND,
                          f"model {command.model} has no price in effect; register it with "
                          "model.register", {"model": command.model})
    scopes = await _scopes(uow, command, loaded.state) if loaded.state is not None else ()
    facts = Facts(admission=Admission(uow.repos.ledgers, scopes=scopes))
    events = run.decide(loaded.state, command, uow.context(facts, price=price))
    uow.record(uow.repos.runs, loaded, events)
    uow.after_commit.append(lambda unit, committed: _count_usage(unit, events, committed))
    return Outcome(loaded)


async def _scopes(uow: UnitOfWork, command: RecordUsage, state: RunState) -> tuple[str, ...]:
    """Where the usage counts: its reservation's scopes, or the run's at this instant."""
    ledgers = uow.repos.ledgers
    payer = payer_of(state)
    if command.session_id is not None:
        payer = replace(payer, session_id=command.session_id)
    rid = command.reservation_id
    if rid is None:
        return ledgers.scopes_of(payer, uow.now)
    if ledgers.ended(rid) == "settled":
        raise DomainError(ErrorCode.INVALID_TRANSITION,
                          f"reservation {rid} is already settled", {"reservation_id": rid})
    hold = ledgers.hold(rid)
    if hold is not None:
        return _same_run(rid, hold.run_id, state.run_id, hold.scopes)
    reserved = (await uow.get(uow.repos.reservations, rid)).state
    if reserved is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"reservation {rid} does not exist; "
                          "budget.reserve first", {"reservation_id": rid})
    # Released (given back, expired) before it settled: the money was spent all the same.
    return _same_run(rid, reserved.run_id, state.run_id, reserved.scopes)


def _same_run(rid: str, reserved_for: str, run_id: str, scopes: tuple[str, ...]
              ) -> tuple[str, ...]:
    if reserved_for != run_id:
        raise DomainError(ErrorCode.VALIDATION_FAILED,
                          f"reservation {rid} is for run {reserved_for}, not {run_id}",
                          {"reservation_id": rid, "run_id": reserved_for})
    return scopes


async def _count_usage(uow: UnitOfWork, events: list[DomainEvent], committed: Committed
                       ) -> None:
    """This replica's next decisions see its own usage on the ledgers at once."""
    for event, written in zip(events, committed.written, strict=True):
        if isinstance(event, UsageRecorded):
            uow.repos.ledgers.used(usage_of_event(event), written.seq)


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
