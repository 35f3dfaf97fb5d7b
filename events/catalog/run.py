"""Events of the Run aggregate."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from events.base import DomainEvent, Label, ShortText
from events.ids import Id
from events.money import Usd, UsdAmount, UsdPerMtok, register_money_upcaster
from events.versions import registry

__all__ = [
    "RunBudget",
    "RunBudgetExceeded",
    "RunCancelled",
    "RunConfigured",
    "RunCreated",
    "RunFailed",
    "RunStarted",
    "RunSucceeded",
    "UsageRecorded",
]


class RunBudget(BaseModel):
    """A run's spending limit; either bound may be absent."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    max_tokens: int | None = Field(default=None, ge=0)
    max_cost_usd: UsdAmount | None = None


class _RunEvent(DomainEvent):
    aggregate: ClassVar[str] = "run"


class RunCreated(_RunEvent):
    """A run was created, in ``pending`` (version 2: the budget's amount is exact)."""

    schema_version: ClassVar[int] = 2

    run_id: Id
    name: Label
    labels: dict[str, str] = Field(default_factory=dict)
    budget: RunBudget | None = None
    budget_id: Id | None = None
    """The shared budget (Budget aggregate) the run also draws on, if any."""
    max_concurrency: int | None = Field(default=None, ge=1)
    auto_end: bool = False
    cache_results: bool = False
    """Its tasks are keyed for the result cache by a hash of kind and payload."""
    cache_ttl_s: float | None = Field(default=None, gt=0)
    """How old a cached result its tasks accept (None: the default, one day)."""
    session_id: Id | None = None
    """The session the run belongs to: its usage also counts against the session's budgets."""


class RunConfigured(_RunEvent):
    """The run's own concurrency limit is now ``max_concurrency`` (null: none)."""

    run_id: Id
    max_concurrency: int | None = Field(default=None, ge=1)


class RunStarted(_RunEvent):
    """The run began executing."""

    run_id: Id


class RunSucceeded(_RunEvent):
    """The run finished successfully."""

    run_id: Id


class RunFailed(_RunEvent):
    """The run finished unsuccessfully."""

    run_id: Id
    reason: ShortText = ""


class RunCancelled(_RunEvent):
    """The run was cancelled before it finished."""

    run_id: Id
    reason: ShortText = ""


class UsageRecorded(_RunEvent):
    """One model call's usage, priced at the price in effect, price and cost frozen here.

    ``budget_id`` names the shared budget the run draws on: the budget's spending is the
    sum of these, so one event charges both. (Logs of older versions charge a budget
    with a separate ``BudgetCharged`` and leave ``budget_id`` out here.)

    Version 2 holds prices and costs as exact decimals and adds the cached input: the
    four token counts are disjoint (``tokens_in`` is the input billed at the input
    price), each priced at its own rate; ``provider_cost_usd`` is what the provider
    said the call cost, kept beside the computed ``cost_usd`` for reconciliation.
    """

    schema_version: ClassVar[int] = 2

    run_id: Id
    task_id: Id | None = None
    worker_id: Id | None = None
    model: str
    provider: str
    tokens_in: int = Field(ge=0)
    tokens_out: int = Field(ge=0)
    latency_ms: float | None = None
    outcome: str = "ok"
    input_usd_per_mtok: UsdPerMtok
    output_usd_per_mtok: UsdPerMtok
    price_effective_from: str
    cost_usd: Usd
    budget_id: Id | None = None
    cached_tokens_in: int = Field(default=0, ge=0)
    """Input tokens read from the provider's prompt cache."""
    cache_write_tokens_in: int = Field(default=0, ge=0)
    """Input tokens written to the provider's prompt cache."""
    cached_input_usd_per_mtok: UsdPerMtok | None = None
    """The cache-read price applied (null on older events: no cached tokens)."""
    cache_write_usd_per_mtok: UsdPerMtok | None = None
    """The cache-write price applied."""
    provider_cost_usd: Usd | None = None
    reservation_id: Id | None = None
    """The reservation this usage settles: it stops counting, the usage counts instead."""
    session_id: Id | None = None
    scopes: tuple[str, ...] | None = None
    """The budget ledger keys the usage counts against (None on older logs: its budget)."""


class RunBudgetExceeded(_RunEvent):
    """The run's usage crossed its budget; new work for it is refused from now on.

    Written by older versions beside the crossing ``UsageRecorded``; a run is now over
    budget as soon as its usage says so.
    """

    schema_version: ClassVar[int] = 2

    run_id: Id
    tokens: int
    cost_usd: Usd
    max_tokens: int | None = None
    max_cost_usd: Usd | None = None


# Version 2 of the events naming an amount holds it as an exact decimal string.
for _type, _amounts in (
        ("RunCreated", ("budget.max_cost_usd",)),
        ("UsageRecorded", ("input_usd_per_mtok", "output_usd_per_mtok", "cost_usd")),
        ("RunBudgetExceeded", ("cost_usd", "max_cost_usd"))):
    register_money_upcaster(registry, _type, 1, _amounts)
