"""The task repository and the board of open tasks: the claim index of this replica.

Every task event passes through here, from this replica's own writes and from the log
follower, so the board holds every open task; claims, lease expiry and the run-end
policy read it. Open tasks stay in memory (a board cannot forget one); ended ones go
to the repository's bounded cache and are read back from the log when needed.
"""

from __future__ import annotations

from collections import OrderedDict

from events import events_filter
from events.base import DomainEvent, JsonObject
from events.catalog.task import TaskLeased, TaskSubmitted
from events.codec import EventCodec, StoredEvent
from services.domain.claims import TaskBoard
from services.domain.registry import TASK
from services.domain.task import TaskState
from services.store import EventStore

from .partition import Partition, complete_partition
from .repositories import Loaded, Repository

__all__ = ["TaskRepository"]

_ENDED = frozenset({"succeeded", "failed", "cancelled"})
_PAYLOAD_BYTES = 64 * 1024 * 1024
"""Open tasks' payloads kept in memory, so a claim's reply needs no read of the log."""
_CLAIMS_KEPT = 100_000
"""Claim command ids remembered for answering retried claims; older retries fall back to
JetStream's duplicate window."""


class TaskRepository(Repository[TaskState]):
    """Tasks: open ones pinned in memory and filed on the board, ended ones cached."""

    def __init__(self, store: EventStore, codec: EventCodec, max_entries: int = 50_000,
                 max_bytes: int = 64 * 1024 * 1024) -> None:
        super().__init__(TASK, store, codec, max_entries, max_bytes)
        self.board = TaskBoard()
        self.partition = Partition(events_filter("task", store.subject_prefix))
        self._open: dict[str, Loaded[TaskState]] = {}
        self._order: dict[str, int] = {}
        self._claims: OrderedDict[str, str] = OrderedDict()
        self._payloads: dict[str, tuple[JsonObject, int]] = {}
        self._payload_bytes = 0

    def apply(self, loaded: Loaded[TaskState], event: DomainEvent, seq: int, command_id: str,
              size: int, evolved: TaskState | None = None) -> None:
        """Applies one event; a lease also records which task its claim's command got."""
        super().apply(loaded, event, seq, command_id, size, evolved)
        if isinstance(event, TaskSubmitted) and self._payload_bytes + size <= _PAYLOAD_BYTES:
            self._payloads[loaded.aggregate_id] = (event.payload, size)
            self._payload_bytes += size
        if isinstance(event, TaskLeased):
            self._claims[command_id] = loaded.aggregate_id
            while len(self._claims) > _CLAIMS_KEPT:
                self._claims.popitem(last=False)

    async def complete(self, follower_position: int) -> None:
        """Makes sure every task event up to the partition's last known one is on the board."""
        await complete_partition(self.partition, self.store, follower_position,
                                 lambda recorded: self.observe(self.decode(recorded)))

    def payload_of(self, task_id: str) -> JsonObject | None:
        """The payload an open task was submitted with, when it is kept in memory."""
        kept = self._payloads.get(task_id)
        return kept[0] if kept is not None else None

    def claimed_by(self, command_id: str) -> str | None:
        """The task a claim with this command id leased, when this replica saw it."""
        return self._claims.get(command_id)

    def cached(self, aggregate_id: str) -> Loaded[TaskState] | None:
        """The task as this replica knows it, or None."""
        return self._open.get(aggregate_id) or super().cached(aggregate_id)

    def open_tasks(self) -> list[Loaded[TaskState]]:
        """Every open task."""
        return list(self._open.values())

    async def get(self, aggregate_id: str) -> Loaded[TaskState]:
        """An open task from memory; an ended one from the cache or the log."""
        found = self._open.get(aggregate_id)
        return found if found is not None else await super().get(aggregate_id)

    def observe(self, stored: StoredEvent) -> None:
        """Folds every task event, including those of tasks this replica never loaded."""
        self.partition.saw(stored.seq)
        known = self.cached(stored.aggregate_id)
        if known is not None and stored.seq <= known.last_seq:
            return
        if known is None and stored.type != "TaskSubmitted":
            return  # an ended task's late event, not cached: the log holds it
        fresh: Loaded[TaskState] = known.copy() if known else Loaded("task", stored.aggregate_id)
        self.fold(fresh, stored)
        self.remember(fresh)

    def remember(self, loaded: Loaded[TaskState]) -> None:
        """Keeps an open task pinned and on the board; an ended one leaves both."""
        state = loaded.state
        if state is None:
            super().remember(loaded)  # not submitted (yet): cached like any other
            return
        self.partition.saw(loaded.last_seq)
        order = self._order.setdefault(loaded.aggregate_id, loaded.last_seq)
        self.board.put(state, order)
        if state.state in _ENDED:
            self._forget_payload(loaded)
            self._open.pop(loaded.aggregate_id, None)
            self._order.pop(loaded.aggregate_id, None)
            super().remember(loaded)
            return
        self._open[loaded.aggregate_id] = loaded
        if self.on_change is not None:
            self.on_change(loaded)

    def _forget_payload(self, loaded: Loaded[TaskState]) -> None:
        kept = self._payloads.pop(loaded.aggregate_id, None)
        if kept is not None:
            self._payload_bytes -= kept[1]

    def forget(self, aggregate_id: str) -> None:
        """Drops an ended task from the cache; an open one stays (the board needs it)."""
        if aggregate_id not in self._open:
            super().forget(aggregate_id)

