"""Claims: which open task a worker gets, under every limit, decided on the board of open tasks.

The board holds every open task's state, folded from the log. Occupancy (what a worker
holds, how many of a run's tasks are leased, ...) is derived from the live leases on the
board, never kept as a counter of its own: a lease that ends any way frees its slot by
that very event, and a replay of the log recomputes it exactly.

``claim`` is pure: the service decides it on a board that knows every task event up to
the position its append is guarded by, so the one ``TaskLeased`` it appends cannot
double-lease a task or overfill a worker, on any number of replicas.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime

from events.catalog.task import TaskLeased

from .context import Context
from .task import TaskState, is_claimable, lease
from .worker import WorkerState, require_room

__all__ = ["Claim", "TaskBoard", "claim"]

_HELD = frozenset({"leased", "running"})


@dataclass(frozen=True, slots=True)
class Claim:
    """The task a claim leases and its lease."""

    task: TaskState
    leased: TaskLeased


@dataclass(slots=True)
class _Entry:
    state: TaskState
    order: int
    """The sequence of its submission: FIFO within a priority is log order."""


class TaskBoard:
    """Every open task, indexed for claims (by kind, priority, order) and for leases."""

    def __init__(self) -> None:
        self._tasks: dict[str, _Entry] = {}
        self._ready: dict[str, list[tuple[int, int, str]]] = {}
        self._waiting: list[tuple[datetime, int, str]] = []
        self._leases: list[tuple[datetime, int, str]] = []
        self._held_by: dict[str, set[str]] = {}
        self._by_run: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def get(self, task_id: str) -> TaskState | None:
        """The open task's state, or None (unknown or ended)."""
        entry = self._tasks.get(task_id)
        return entry.state if entry else None

    # -- keeping it current -----------------------------------------------------

    def put(self, state: TaskState, order: int) -> None:
        """Files a task's newest state; an ended task leaves the board."""
        before = self._tasks.get(state.task_id)
        if before is not None:
            self._unhold(before.state)
            order = before.order
        if state.state in ("succeeded", "failed", "cancelled"):
            self._drop(state)
            return
        self._tasks[state.task_id] = _Entry(state, order)
        self._by_run.setdefault(state.run_id, set()).add(state.task_id)
        self._file(state, order)

    def _file(self, state: TaskState, order: int) -> None:
        if state.state == "queued":
            heapq.heappush(self._ready.setdefault(state.kind, []),
                           (-state.priority, order, state.task_id))
        elif state.state == "retry_wait" and state.retry_at is not None:
            heapq.heappush(self._waiting, (state.retry_at, order, state.task_id))
        elif state.state in _HELD:
            if state.worker_id is not None:
                self._held_by.setdefault(state.worker_id, set()).add(state.task_id)
            if state.lease_expires_at is not None:
                heapq.heappush(self._leases,
                               (state.lease_expires_at, state.lease_epoch, state.task_id))

    def _unhold(self, state: TaskState) -> None:
        if state.state in _HELD and state.worker_id is not None:
            held = self._held_by.get(state.worker_id)
            if held is not None:
                held.discard(state.task_id)
                if not held:
                    del self._held_by[state.worker_id]

    def _drop(self, state: TaskState) -> None:
        self._tasks.pop(state.task_id, None)
        tasks = self._by_run.get(state.run_id)
        if tasks is not None:
            tasks.discard(state.task_id)
            if not tasks:
                del self._by_run[state.run_id]

    # -- reading --------------------------------------------------------------

    def held_by(self, worker_id: str) -> frozenset[str]:
        """The tasks a worker holds now: its live leases."""
        return frozenset(self._held_by.get(worker_id, ()))

    def holders(self) -> dict[str, frozenset[str]]:
        """Every worker holding a task, with what it holds."""
        return {w: frozenset(t) for w, t in self._held_by.items()}

    def open_tasks(self, run_id: str) -> list[str]:
        """The run's tasks that have not ended."""
        return sorted(self._by_run.get(run_id, ()))

    def tasks(self) -> Iterator[TaskState]:
        """Every open task."""
        return (entry.state for entry in list(self._tasks.values()))

    def candidates(self, kinds: Collection[str], now: datetime
                   ) -> Generator[TaskState, None, None]:
        """Claimable tasks of ``kinds`` (empty: every kind), due retries first, then best first."""
        wanted = list(kinds) or list(self._ready)
        yield from self._due_retries(set(wanted), now)
        yield from self._ready_in_order(wanted)

    def _ready_in_order(self, kinds: list[str]) -> Iterator[TaskState]:
        popped: dict[str, list[tuple[int, int, str]]] = {}
        try:
            while True:
                heads = [(heap[0], kind) for kind in kinds if (heap := self._clean(kind))]
                if not heads:
                    return
                (key, kind) = min(heads)
                # Taken off while offered, so the next head comes up; put back after.
                popped.setdefault(kind, []).append(heapq.heappop(self._ready[kind]))
                yield self._tasks[key[2]].state
        finally:
            for kind, items in popped.items():
                for item in items:
                    heapq.heappush(self._ready[kind], item)

    def _clean(self, kind: str) -> list[tuple[int, int, str]]:
        """The kind's heap with stale heads (no longer queued) dropped."""
        heap = self._ready.get(kind, [])
        while heap:
            entry = self._tasks.get(heap[0][2])
            if entry is not None and entry.state.state == "queued":
                break
            heapq.heappop(heap)
        return heap

    def _due_retries(self, kinds: set[str], now: datetime) -> Iterator[TaskState]:
        due = []
        while self._waiting and self._waiting[0][0] <= now:
            item = heapq.heappop(self._waiting)
            entry = self._tasks.get(item[2])
            if entry is not None and entry.state.state == "retry_wait":
                due.append(item)
        try:
            for _, _, task_id in due:
                state = self._tasks[task_id].state
                if state.kind in kinds:
                    yield state
        finally:
            # Whatever was not leased stays due; a leased one is dropped lazily later.
            for item in due:
                heapq.heappush(self._waiting, item)

    def lapsed_leases(self, now: datetime) -> list[TaskState]:
        """Held tasks whose lease ran out before ``now``."""
        lapsed = []
        while self._leases and self._leases[0][0] < now:
            expires_at, epoch, task_id = heapq.heappop(self._leases)
            entry = self._tasks.get(task_id)
            if entry and entry.state.state in _HELD and entry.state.lease_epoch == epoch \
                    and entry.state.lease_expires_at == expires_at:
                lapsed.append(entry.state)
        return lapsed


def claim(board: TaskBoard, worker: WorkerState, kinds: Collection[str], ctx: Context,
          lease_ttl_s: float) -> Claim | None:
    """The best claimable task for ``worker`` and its lease, or None when there is none.

    Refuses (``DomainError``) a worker that is not taking work or is at capacity.
    """
    held = board.held_by(worker.worker_id)
    require_room(worker, len(held))
    with closing(board.candidates(kinds, ctx.now)) as candidates:
        for task in candidates:
            if task.task_id in held or not is_claimable(task, kinds, ctx.now):
                continue
            return Claim(task, lease(task, worker.worker_id, ctx, lease_ttl_s))
    return None
