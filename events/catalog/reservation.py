"""Events of the Reservation aggregate: money set aside on budgets before a model call.

A reservation counts against every budget scope it names (``scopes``) until it ends:
settled by the ``UsageRecorded`` that names it, or released (``ReservationReleased``,
for any reason: the caller, its expiry, its task's end, a lease expiry, a lost worker).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from events.base import DomainEvent, Moment
from events.ids import Id
from events.money import Usd

__all__ = ["RELEASE_REASONS", "BudgetReserved", "ReleaseReason", "ReservationReleased"]

ReleaseReason = Literal["released", "expired", "task_ended", "lease_expired", "worker_lost"]
RELEASE_REASONS: tuple[ReleaseReason, ...] = ("released", "expired", "task_ended",
                                              "lease_expired", "worker_lost")


class _ReservationEvent(DomainEvent):
    aggregate: ClassVar[str] = "reservation"

    reservation_id: Id


class BudgetReserved(_ReservationEvent):
    """Tokens and cost set aside on every scope in ``scopes`` until settled or released.

    ``scopes`` are ledger keys (``run:<id>``, ``session:<id>``, ``day@<date>``,
    ``budget:<id>`` or ``budget:<id>@<date>``): the exact set this reservation was admitted
    against, so a replay counts it where the decision did.
    """

    run_id: Id
    task_id: Id | None = None
    worker_id: Id | None = None
    session_id: Id | None = None
    model: str | None = None
    estimate_tokens: int = Field(ge=0)
    estimate_cost_usd: Usd
    expires_at: Moment
    scopes: tuple[str, ...] = ()


class ReservationReleased(_ReservationEvent):
    """The reservation no longer counts against its scopes; ``reason`` says why."""

    reason: ReleaseReason = "released"
