"""Every aggregate type's repository, on one store and codec, kept current by the log follower."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from events.codec import EventCodec, StoredEvent
from events.money import parse_usd
from services.domain.charges import SpendBoard
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

__all__ = ["PartitionIndex", "Repositories"]


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
                 max_bytes: int = 64 * 1024 * 1024, max_running: int | None = None) -> None:
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
        self.spend = SpendBoard()
        """What each shared budget has been charged, folded from usage on the log."""
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

        self.runs.on_change = run_changed
        self.queues.on_change = queue_changed
        self.gates.on_change = gate_changed
        self.models.on_change = model_changed

    def partitioned(self, name: str) -> PartitionIndex:
        """The index of a partition of the log (``task``)."""
        if name != "task":
            raise KeyError(f"no partition {name!r}")
        return self.tasks

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
        """Folds an event into its repository's cache (tasks: always), and budgets' spending."""
        repo = self._by_name(stored.aggregate)
        if repo is not None:
            repo.observe(stored)
        self.limits.observe(stored)
        self.gates_of.observe(stored)
        if stored.type == "UsageRecorded":
            # Each event passes here once per process: the spending is exact at the
            # follower's position. (Older logs charged with BudgetCharged, which the
            # budget aggregate folds itself, and left budget_id off the usage.)
            self._charge(stored)
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

    def _charge(self, stored: StoredEvent) -> None:
        budget_id = stored.data.get("budget_id")
        if isinstance(budget_id, str):
            tokens = int(stored.data["tokens_in"]) + int(stored.data["tokens_out"])
            self.spend.charge(stored.seq, budget_id, tokens, parse_usd(stored.data["cost_usd"]))
