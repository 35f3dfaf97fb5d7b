"""Reservations: admit a model call on every budget that applies before it spends, release it.

``budget.reserve`` is decided on the whole reservation partition (``RESERVE``): one
``BudgetReserved``, guarded by every reservation before it, so admissions are exact on
any number of replicas. ``budget.release`` writes one reservation under its own check.
Settlement is ``usage.record`` with the reservation id (handlers/runs.py).
"""

from __future__ import annotations

from decimal import Decimal

from events.commands.reservation import ReleaseReservation, ReserveBudget
from events.errors import ErrorCode
from events.ids import model_aggregate_id
from events.money import usd_text
from services.domain import DomainError, model, reservation
from services.domain.charges import Bound, Payer, money
from services.domain.context import Facts
from services.domain.reservation import Admission
from services.domain.run import RunState

from ..repositories import CommandRecord
from ..routes import RESERVATION_WRITE, RESERVE, AnyRoute, Outcome, ReplyFields, Route, target_of
from ..unit_of_work import Committed, UnitOfWork
from .common import load_run, require_exists

__all__ = ["ROUTES", "payer_of"]

_OPEN_RUN = ("pending", "running")
_PER_MTOK = Decimal(1_000_000)


def payer_of(run: RunState) -> Payer:
    """Who a run's spending is charged to: the run, its session, its shared budget."""
    return Payer(run.run_id, run.session_id, run.budget_id, run.budget)


async def reserve_budget(uow: UnitOfWork, command: ReserveBudget) -> Outcome:
    """Sets an estimate aside on every scope that applies, or refuses ``budget_exceeded``."""
    repos = uow.repos
    loaded = await uow.get(repos.reservations, target_of(command))
    run = require_exists(await load_run(uow, command.run_id), f"run {command.run_id}")
    if run.state not in _OPEN_RUN:
        raise DomainError(ErrorCode.INVALID_TRANSITION,
                          f"run {run.run_id} is {run.state}; reserve needs pending/running",
                          {"state": run.state})
    payer = payer_of(run)
    bounds = tuple(repos.ledgers.bounds(payer, repos.budget_defaults, uow.now))
    admission = Admission(repos.ledgers, bounds, repos.ledgers.scopes_of(payer, uow.now),
                          await _cost_estimate(uow, command, bounds), run.session_id)
    events = reservation.decide(loaded.state, command, uow.context(Facts(admission=admission)))
    uow.record(repos.reservations, loaded, events, partition=repos.reservations.partition)

    async def extra(committed: Committed | None) -> ReplyFields:
        del committed
        return _view(uow, target_of(command))

    return Outcome(loaded, extra)


def _view(uow: UnitOfWork, reservation_id: str) -> ReplyFields:
    cached = uow.repos.reservations.cached(reservation_id)
    state = cached.state if cached is not None else None
    if state is None:
        return {"reservation_id": reservation_id}
    return {"reservation_id": reservation_id, "expires_at": state.expires_at.isoformat(),
            "estimate_tokens": state.tokens, "estimate_cost_usd": usd_text(state.cost_usd),
            "scopes": list(state.scopes)}


async def replay_reserve(uow: UnitOfWork, command: ReserveBudget, record: CommandRecord
                         ) -> ReplyFields:
    """A retried reservation answers with the reservation it made."""
    del record
    await uow.get(uow.repos.reservations, target_of(command))
    return _view(uow, target_of(command))


async def _cost_estimate(uow: UnitOfWork, command: ReserveBudget, bounds: tuple[Bound, ...]
                         ) -> Decimal:
    """The USD estimate: given, or the token estimate at the model's dearer price."""
    if command.estimate_tokens is None and any(b.max_tokens is not None for b in bounds):
        raise DomainError(ErrorCode.VALIDATION_FAILED, "a token limit applies ("
                          f"{_labels(bounds, tokens=True)}); give estimate_tokens")
    if command.estimate_cost_usd is not None:
        return command.estimate_cost_usd
    if not any(b.needs_cost() for b in bounds):
        return Decimal(0)
    price = None
    if command.model is not None:
        prices = await uow.get(uow.repos.models, model_aggregate_id(command.model))
        price = model.price_at(prices.state, uow.now)
    if price is None or command.estimate_tokens is None:
        raise DomainError(ErrorCode.VALIDATION_FAILED, "a USD limit applies ("
                          f"{_labels(bounds, tokens=False)}); give estimate_cost_usd, or "
                          "estimate_tokens with a model that has a price")
    dearer = max(money(price.input_usd_per_mtok), money(price.output_usd_per_mtok))
    return command.estimate_tokens * dearer / _PER_MTOK


def _labels(bounds: tuple[Bound, ...], tokens: bool) -> str:
    return ", ".join(b.label for b in bounds
                     if (b.max_tokens is not None if tokens else b.needs_cost()))


async def release_reservation(uow: UnitOfWork, command: ReleaseReservation) -> Outcome:
    """Gives a live reservation back; a settled or released one is refused."""
    repos = uow.repos
    loaded = await uow.get(repos.reservations, command.reservation_id)
    facts = Facts(admission=Admission(repos.ledgers))
    uow.record(repos.reservations, loaded,
               reservation.decide(loaded.state, command, uow.context(facts)))
    return Outcome(loaded)


ROUTES: tuple[AnyRoute, ...] = (
    Route(ReserveBudget, reserve_budget, RESERVE, replay=replay_reserve),
    Route(ReleaseReservation, release_reservation, RESERVATION_WRITE),
)
