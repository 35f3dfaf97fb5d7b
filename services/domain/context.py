"""What a decision may know besides its own aggregate: the clock and facts the service loaded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING

from .recovery import DEFAULT_RECOVERY, RecoveryTable

if TYPE_CHECKING:
    from .budget import BudgetState
    from .gate import GateState
    from .reservation import Admission
    from .result_cache import CachedResult
    from .routing import RoutingFacts
    from .run import RunState
    from .task import TaskState
    from .workstream import WorkstreamState

__all__ = ["NO_FACTS", "Context", "Facts", "Price"]

_EMPTY: Mapping[str, None] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Price:
    """A model's list prices per million tokens, in effect from ``effective_from``.

    Cached input without a price of its own is billed at the input price: a cost is
    never understated because a cache price is missing.
    """

    provider: str
    input_usd_per_mtok: Decimal
    output_usd_per_mtok: Decimal
    effective_from: datetime
    cached_input_usd_per_mtok: Decimal | None = None
    cache_write_usd_per_mtok: Decimal | None = None

    @property
    def cache_read(self) -> Decimal:
        """The price of input read from the prompt cache."""
        own = self.cached_input_usd_per_mtok
        return self.input_usd_per_mtok if own is None else own

    @property
    def cache_write(self) -> Decimal:
        """The price of input written to the prompt cache."""
        own = self.cache_write_usd_per_mtok
        return self.input_usd_per_mtok if own is None else own


@dataclass(frozen=True, slots=True)
class Facts:
    """States of other aggregates a rule reads; each rule names the fields it needs.

    ``decide`` stays pure: the service loads these and passes them in. A field a
    rule needs but the service left empty reads as "does not exist".
    """

    run: RunState | None = None
    """The run a command's target belongs to (task.submit, workstream.create, ...)."""
    workstream: WorkstreamState | None = None
    """The workstream a submitted task belongs to."""
    budget: BudgetState | None = None
    """The shared budget a submitted task's run draws on."""
    tasks: Mapping[str, TaskState | None] = field(default_factory=lambda: _EMPTY)
    """A task's dependencies, by id (task.unblock)."""
    workstreams: Mapping[str, WorkstreamState | None] = field(default_factory=lambda: _EMPTY)
    """A workstream's dependencies, by id (workstream.ready)."""
    held: frozenset[str] = frozenset()
    """The tasks a worker holds now: its live leases (worker.drain, deregister, mark_lost)."""
    gates: Mapping[str, GateState | None] = field(default_factory=lambda: _EMPTY)
    """The test gates of a patch, by id (patch.commit)."""
    fallbacks: tuple[str, ...] = ()
    """The fallback chain of a failing task's model (task.fail and the other attempt ends)."""
    cached: CachedResult | None = None
    """The result stored under a submitted task's cache key (task.submit)."""
    cached_matches: int = 0
    """How many stored results a cache.invalidate drops on this replica."""
    routing: RoutingFacts | None = None
    """The candidate models and the budget left (model.recommend)."""
    admission: Admission | None = None
    """The budget ledgers a reservation is decided on (budget.reserve, budget.release)."""


NO_FACTS = Facts()


@dataclass(frozen=True, slots=True)
class Context:
    """The inputs of ``decide`` that are not the aggregate's own state."""

    now: datetime
    price: Price | None = None
    """For ``usage.record``: the price in effect at ``now`` for the command's model."""
    facts: Facts = NO_FACTS
    recovery: RecoveryTable = DEFAULT_RECOVERY
    """Error class -> recovery strategy (configurable, ``RUNLOG_RECOVERY``)."""
