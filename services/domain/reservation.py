"""The Reservation state machine: reserved -> released; a settling usage ends it on the ledgers.

A reservation is admitted on the budget ledgers (``charges.admit``) and written as one
``BudgetReserved``. It ends when a ``UsageRecorded`` names it (the run's event: the
money was spent) or with one ``ReservationReleased`` (given back, expired, its task or
lease ended, its worker lost). Settlement is not a state of this aggregate: it is read
from the ledgers, which fold both.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from events.base import Command, DomainEvent
from events.catalog.reservation import BudgetReserved, ReservationReleased
from events.commands.reservation import ReleaseReservation, ReserveBudget
from events.errors import ErrorCode

from .charges import Bound, Ledgers, admit
from .checks import action_of
from .context import Context
from .machine import DomainError, InvalidHistory, TransitionTable

__all__ = ["TABLE", "Admission", "ReservationState", "decide", "evolve"]

TABLE = TransitionTable(
    aggregate="reservation",
    states=("reserved", "released"),
    edges={
        (None, "BudgetReserved"): "reserved",
        ("reserved", "ReservationReleased"): "released",
    },
    terminal=frozenset({"released"}),
)


@dataclass(frozen=True, slots=True)
class Admission:
    """What a reservation is decided on: the ledgers, the bounds and scopes, the estimate."""

    ledgers: Ledgers
    bounds: tuple[Bound, ...] = ()
    scopes: tuple[str, ...] = ()
    cost_usd: Decimal = Decimal(0)
    """The USD estimate (given, or priced from the token estimate)."""
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReservationState:
    """A reservation as its own events tell it."""

    reservation_id: str
    state: str
    run_id: str
    tokens: int
    cost_usd: Decimal
    expires_at: datetime
    scopes: tuple[str, ...]
    task_id: str | None = None
    worker_id: str | None = None
    reason: str | None = None


def decide(state: ReservationState | None, command: Command, ctx: Context
           ) -> list[DomainEvent]:
    """Returns the events a reservation command produces, or raises ``DomainError``."""
    admission = ctx.facts.admission
    if isinstance(command, ReserveBudget):
        if state is not None:
            raise DomainError(ErrorCode.ALREADY_EXISTS,
                              f"reservation {state.reservation_id} already exists")
        if admission is None:
            raise ValueError("the service loads the ledgers before deciding a reservation")
        return [_reserve(command, admission, ctx.now)]
    if state is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"reservation {command.target_id()} does not exist")
    if isinstance(command, ReleaseReservation):
        return _release(state, command, admission)
    raise TypeError(f"not a reservation command: {type(command).__name__}")


def _reserve(command: ReserveBudget, admission: Admission, now: datetime) -> BudgetReserved:
    if command.reservation_id is None:
        raise ValueError("the service assigns a reservation_id before deciding")
    tokens = command.estimate_tokens or 0
    admit(admission.ledgers, admission.bounds, tokens, admission.cost_usd)
    return BudgetReserved(
        reservation_id=command.reservation_id, run_id=command.run_id, task_id=command.task_id,
        worker_id=command.worker_id, session_id=admission.session_id, model=command.model,
        estimate_tokens=tokens, estimate_cost_usd=admission.cost_usd,
        expires_at=now + timedelta(seconds=command.ttl_s), scopes=admission.scopes)


def _release(state: ReservationState, command: ReleaseReservation,
             admission: Admission | None) -> list[DomainEvent]:
    TABLE.require(state.state, "ReservationReleased", action_of(command), state.reservation_id)
    if admission is not None and admission.ledgers.ended(state.reservation_id) == "settled":
        raise DomainError(ErrorCode.INVALID_TRANSITION,
                          f"reservation {state.reservation_id} is settled; release needs reserved",
                          {"state": "settled"})
    return [ReservationReleased(reservation_id=state.reservation_id, reason=command.reason)]


def evolve(state: ReservationState | None, event: DomainEvent) -> ReservationState:
    """Returns the reservation's state after ``event`` (which must fit the table)."""
    target = TABLE.next_state(state.state if state else None, event.type_name())
    if isinstance(event, BudgetReserved):
        return ReservationState(event.reservation_id, target, event.run_id,
                                event.estimate_tokens, event.estimate_cost_usd,
                                event.expires_at, event.scopes, event.task_id, event.worker_id)
    if state is None:
        raise InvalidHistory(f"reservation: {event.type_name()} before BudgetReserved")
    if isinstance(event, ReservationReleased):
        return replace(state, state=target, reason=event.reason)
    return replace(state, state=target)
