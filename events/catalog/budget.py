"""Events of the Budget aggregate: a spending limit shared by the runs that name it."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from events.base import DomainEvent, Label
from events.ids import Id
from events.money import Usd, register_money_upcaster
from events.versions import registry

__all__ = [
    "DEFAULT_THRESHOLDS",
    "BudgetCharged",
    "BudgetClosed",
    "BudgetCreated",
    "BudgetExhausted",
    "BudgetRaised",
    "BudgetScope",
    "BudgetThresholdCrossed",
]

BudgetScope = Literal["shared", "run", "session", "day"]
"""Whose spending a budget bounds: runs naming it, one run, one session, everything."""
DEFAULT_THRESHOLDS: tuple[int, ...] = (50, 80, 100)
"""Percentages of a bound whose crossing is recorded as an alert."""


class _BudgetEvent(DomainEvent):
    aggregate: ClassVar[str] = "budget"

    budget_id: Id


class BudgetCreated(_BudgetEvent):
    """A budget was created, ``active``; an absent bound is unlimited."""

    schema_version: ClassVar[int] = 2

    name: Label
    max_cost_usd: Usd | None = None
    max_tokens: int | None = Field(default=None, ge=0)
    scope: BudgetScope = "shared"
    period: Literal["day"] | None = None
    """``day``: spending starts again at each midnight of ``time_zone`` (by event time)."""
    time_zone: str = "UTC"
    run_id: Id | None = None
    """The run a ``run`` budget bounds."""
    session_id: Id | None = None
    """The session a ``session`` budget bounds."""
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS


class BudgetRaised(_BudgetEvent):
    """The budget's bounds are now these (``None``: unlimited)."""

    schema_version: ClassVar[int] = 2

    max_cost_usd: Usd | None = None
    max_tokens: int | None = Field(default=None, ge=0)


class BudgetCharged(_BudgetEvent):
    """(Older logs.) A run spent this (appended with the run's ``UsageRecorded``)."""

    schema_version: ClassVar[int] = 2

    run_id: Id
    tokens: int = Field(ge=0)
    cost_usd: Usd


class BudgetExhausted(_BudgetEvent):
    """Spending reached a bound; runs on this budget get no new work."""

    schema_version: ClassVar[int] = 2

    tokens: int
    cost_usd: Usd


class BudgetClosed(_BudgetEvent):
    """The budget was closed; it accepts no new work, only charges already incurred."""


class BudgetThresholdCrossed(_BudgetEvent):
    """Settled spending crossed ``threshold`` % of a bound in ``period`` (once per both)."""

    threshold: int = Field(ge=1, le=1000)
    period: str = ""
    """The day (``YYYY-MM-DD`` in the budget's time zone) for a daily budget, else empty."""
    tokens: int = Field(ge=0)
    cost_usd: Usd


# Version 2 of the events naming an amount holds it as an exact decimal string.
for _type, _amounts in (("BudgetCreated", ("max_cost_usd",)), ("BudgetRaised", ("max_cost_usd",)),
                        ("BudgetCharged", ("cost_usd",)), ("BudgetExhausted", ("cost_usd",))):
    register_money_upcaster(registry, _type, 1, _amounts)
