"""Every aggregate type's repository, on one store and codec, kept current by the log follower."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from events.catalog.run import UsageRecorded
from events.codec import DecodeError, EventCodec, StoredEvent
from events.money import parse_usd
from services.domain.budget import BudgetState
from services.domain.charges import BudgetDefaults, Ledgers, Usage
from services.domain.gate import GateState
from services.domain.model import ModelState
from services.domain.queue import QueueState
from services.domain.registry import (
    BREAKER,
    BUDGET,
    CACHE,
    GATE,
    MODEL,
    PATCH,
    QUEUE,
    ROUTING,
    RUN,
    WORKER,
    WORKSTREAM,
)
from services.domain.result_cache import ResultIndex
from services.domain.routing import ModelCatalog
from services.domain.run import RunState
from services.store import EventStore

from .claim_index import TaskRepository
from .limits import ClaimLimits, GatesOfPatches
from .partition import Partition
from .repositories import CommandRecord, Loaded, Repository
from .reservation_index import ReservationRepository

__all__ = ["PartitionIndex", "Repositories", "usage_of", "usage_of_event"]


class PartitionIndex(Protocol):
    """What a partition's admissions are decided on, kept complete by the follower."""

    @property
    def partition(self) -> Partition:
        """The partition's guard and gate."""
        ...

    async def complete(self, follower_position: int) -> None:
        """Folds in whatever of the partition the follower has not handed out yet."""
        ...


class _CommandIndex(Protocol):
    """A repository seen only for retried commands and the follower."""

    async def record_of(self, aggregate_id: str, command_id: str) -> CommandRecord | None: ...

    def observe(self, stored: StoredEvent) -> None: ...

    async def reload(self, aggregate_id: str) -> object: ...


class Repositories:
    """The repositories of every aggregate type, and what the log follower feeds them."""

    def __init__(self, store: EventStore, codec: EventCodec, max_entries: int = 50_000,
                 max_bytes: int = 64 * 1024 * 1024, max_running: int | None = None,
                 budget_defaults: BudgetDefaults | None = None) -> None:
        self.codec = codec
        self.runs = Repository(RUN, store, codec, max_entries, max_bytes)
        self.workstreams = Repository(WORKSTREAM, store, codec, max_entries, max_bytes)
        self.tasks = TaskRepository(store, codec, max_entries, max_bytes)
        self.workers = Repository(WORKER, store, codec, max_entries, max_bytes)
        self.breakers = Repository(BREAKER, store, codec, max_entries, max_bytes)
        self.patches = Repository(PATCH, store, codec, max_entries, max_bytes)
        self.gates = Repository(GATE, store, codec, max_entries, max_bytes)
        self.models = Repository(MODEL, store, codec, max_entries, max_bytes)
        self.budgets = Repository(BUDGET, store, codec, max_entries, max_bytes)
        self.queues = Repository(QUEUE, store, codec, max_entries, max_bytes)
        self.routing = Repository(ROUTING, store, codec, max_entries, max_bytes)
        self.cache = Repository(CACHE, store, codec, max_entries, max_bytes)
        self.results = ResultIndex()
        """The newest succeeded result per cache key, folded from the log."""
        self.catalog = ModelCatalog()
        """Every registered model and its tier, for routing."""
        self.ledgers = Ledgers()
        """Every budget scope's settled spending and live reservations, folded from the log."""
        self.reservations = ReservationRepository(store, codec, self.ledgers, max_entries,
                                                  max_bytes)
        self.budget_defaults = budget_defaults or BudgetDefaults()
        """``RUNLOG_BUDGET_*_TOKENS``: limits where no budget of the scope is defined."""
        self.limits = ClaimLimits(max_running)
        """Every concurrency limit claims must keep."""
        self.gates_of = GatesOfPatches()
        """Which gates hold each patch."""
        self._watch_own_writes()

        self._indexes: dict[str, _CommandIndex] = {
            "run": self.runs, "workstream": self.workstreams, "task": self.tasks,
            "worker": self.workers, "breaker": self.breakers, "patch": self.patches,
            "gate": self.gates, "model": self.models, "budget": self.budgets,
            "queue": self.queues, "routing": self.routing, "cache": self.cache,
            "reservation": self.reservations,
        }

    def _watch_own_writes(self) -> None:
        """Limits and gates learn this replica's own writes before the follower passes them."""
        def run_changed(loaded: Loaded[RunState]) -> None:
            if loaded.state is not None:
                self.limits.set("run", loaded.aggregate_id, loaded.state.max_concurrency,
                                loaded.last_seq)

        def queue_changed(loaded: Loaded[QueueState]) -> None:
            if loaded.state is not None:
                self.limits.set("kind", loaded.state.kind, loaded.state.max_running,
                                loaded.last_seq)

        def gate_changed(loaded: Loaded[GateState]) -> None:
            if loaded.state is not None and loaded.state.patch_id is not None:
                self.gates_of.add(loaded.state.patch_id, loaded.aggregate_id)

        def model_changed(loaded: Loaded[ModelState]) -> None:
            if loaded.state is not None:
                self.catalog.configured(loaded.state.model, loaded.state.tier)

        def budget_changed(loaded: Loaded[BudgetState]) -> None:
            if loaded.state is not None:
                self.ledgers.define(loaded.state, loaded.last_seq)

        self.runs.on_change = run_changed
        self.queues.on_change = queue_changed
        self.budgets.on_change = budget_changed
        self.gates.on_change = gate_changed
        self.models.on_change = model_changed

    def partitioned(self, name: str) -> PartitionIndex:
        """The index of a partition of the log (``task``, ``reservation``)."""
        if name == "task":
            return self.tasks
        if name == "reservation":
            return self.reservations
        raise KeyError(f"no partition {name!r}")

    def _by_name(self, aggregate: str) -> _CommandIndex | None:
        return self._indexes.get(aggregate)

    async def record_of(self, aggregate: str, aggregate_id: str, command_id: str
                        ) -> CommandRecord | None:
        """What ``command_id`` wrote to an aggregate, as far as this replica knows."""
        repo = self._by_name(aggregate)
        return await repo.record_of(aggregate_id, command_id) if repo is not None else None

    async def reload(self, aggregate: str, aggregate_id: str) -> None:
        """Brings one cached aggregate up to date with the log (loading it if need be)."""
        repo = self._by_name(aggregate)
        if repo is not None:
            await repo.reload(aggregate_id)

    # -- the log follower's observer ------------------------------------------

    def wants(self, aggregate: str) -> bool:
        """Every aggregate type's events concern some repository."""
        return self._by_name(aggregate) is not None

    def observe(self, stored: StoredEvent) -> None:
        """Folds an event into its repository's cache (tasks: always), and the ledgers."""
        repo = self._by_name(stored.aggregate)
        if repo is not None:
            repo.observe(stored)
        self.limits.observe(stored)
        self.gates_of.observe(stored)
        if stored.type == "UsageRecorded":
            # Each event passes here once per process (and once as this replica's own
            # write): the ledgers count it once, by its sequence; an own write is not
            # even read again.
            if not self.ledgers.counted(stored.seq):
                self.ledgers.used(usage_of(stored.data), stored.seq)
        elif stored.aggregate == "budget":
            self._define_budget(stored)
        self._index_results(stored)
        if stored.type == "ModelRegistered":
            self.catalog.registered(str(stored.data["model"]))
        elif stored.type == "ModelConfigured":
            tier = stored.data.get("tier")
            self.catalog.configured(str(stored.data["model"]),
                                    tier if isinstance(tier, str) else None)

    def _index_results(self, stored: StoredEvent) -> None:
        """Keeps the result cache's index current (keyed tasks, their usage, invalidations)."""
        data, kind = stored.data, stored.type
        if kind == "TaskSubmitted" and isinstance(data.get("cache_key"), str):
            self.results.submitted(stored.aggregate_id, data["cache_key"])
        elif kind == "UsageRecorded" and isinstance(data.get("task_id"), str):
            self.results.used(data["task_id"], int(data["tokens_in"]) + int(data["tokens_out"]),
                              parse_usd(data["cost_usd"]))
        elif kind == "TaskSucceeded":
            result = data.get("result")
            self.results.succeeded(stored.aggregate_id, datetime.fromisoformat(
                stored.occurred_at), result if isinstance(result, dict) else None)
        elif kind in ("TaskFailed", "TaskCancelled"):
            self.results.ended(stored.aggregate_id)
        elif kind == "CacheInvalidated":
            key, prefix = data.get("cache_key"), data.get("prefix")
            self.results.invalidate(key if isinstance(key, str) else None,
                                    prefix if isinstance(prefix, str) else None,
                                    datetime.fromisoformat(stored.occurred_at))

    def _define_budget(self, stored: StoredEvent) -> None:
        """Keeps every budget's definition, loaded here or not (admissions read them all)."""
        if stored.seq <= self.ledgers.budget_seq(stored.aggregate_id):
            return
        try:
            event = self.codec.typed(stored)
        except DecodeError:
            return
        state = self.budgets.machine.evolve(self.ledgers.budget(stored.aggregate_id), event)
        self.ledgers.define(state, stored.seq)


def usage_of(data: Mapping[str, Any]) -> Usage:
    """What a stored ``UsageRecorded`` (its upcast fields) counts on the ledgers."""
    reservation_id = data.get("reservation_id")
    budget_id = data.get("budget_id")
    scopes = data.get("scopes")
    return _usage(int(data["tokens_in"]) + int(data["tokens_out"]), parse_usd(data["cost_usd"]),
                  tuple(str(s) for s in scopes) if scopes is not None else None,
                  budget_id if isinstance(budget_id, str) else None,
                  reservation_id if isinstance(reservation_id, str) else None)


def usage_of_event(event: UsageRecorded) -> Usage:
    """What a ``UsageRecorded`` this process just wrote counts (no round trip through JSON)."""
    return _usage(event.tokens_in + event.tokens_out, event.cost_usd, event.scopes,
                  event.budget_id, event.reservation_id)


def _usage(tokens: int, cost_usd: Decimal, scopes: tuple[str, ...] | None,
           budget_id: str | None, reservation_id: str | None) -> Usage:
    # Older logs name no scopes: their usage counts on the run's shared budget.
    if scopes is None:
        scopes = (f"budget:{budget_id}",) if budget_id is not None else ()
    return Usage(tokens, cost_usd, scopes, reservation_id)
