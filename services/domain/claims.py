"""Claims: which open task a worker gets, under every limit, decided on the board of open tasks.

The board holds every open task's state, folded from the log. Occupancy (what a worker
holds, how many of a run's, a kind's or a concurrency key's tasks are leased, who holds
a resource) is derived from the live leases on the board, never kept as a counter of
its own: a lease that ends any way frees its slot by that very event, and a replay of
the log recomputes it exactly.

``claim`` is pure: the service decides it on a board that knows every task event up to
the position its append is guarded by, so the one ``TaskLeased`` it appends cannot
double-lease a task, overfill a worker or pass a limit, on any number of replicas.

Claimable tasks are filed in lanes: tasks of one kind, run, concurrency key (with its
limit), resource and deferrability. Every limit applies to a lane as a whole, so a
claim skips a full lane in one step however many tasks wait in it, and still takes
tasks in order: by priority, a due retry first within its priority, then in submission
order (the README's promise: the highest-priority task; a retry ahead of every priority
let a priority-0 retry pass a waiting priority-9 task).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from types import MappingProxyType

from events.catalog.task import TaskLeased

from .context import Context
from .task import TaskState, lease
from .worker import WorkerState, require_room

__all__ = ["NO_LIMITS", "Claim", "Limits", "Occupancy", "TaskBoard", "claim"]

_HELD = frozenset({"leased", "running"})
_ENDED = frozenset({"succeeded", "failed", "cancelled"})
_NONE: Mapping[str, int] = MappingProxyType({})

Rank = tuple[int, int, int]
"""(minus the priority, 0 for a due retry else 1, submission order): smallest first."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The concurrency limits in force: over everything, per kind, per run."""

    max_running: int | None = None
    """At most this many leased tasks in all (``RUNLOG_MAX_RUNNING``)."""
    by_kind: Mapping[str, int] = field(default_factory=lambda: _NONE)
    """``queue.configure``: at most this many leased tasks of a kind."""
    by_run: Mapping[str, int] = field(default_factory=lambda: _NONE)
    """``run.create`` / ``run.configure`` ``max_concurrency``."""


NO_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Claim:
    """The task a claim leases and its lease."""

    task: TaskState
    leased: TaskLeased


@dataclass(frozen=True, slots=True)
class Lane:
    """What every limit looks at: tasks alike in these are held back (or not) together."""

    kind: str
    run_id: str
    concurrency_key: str | None
    max_concurrency: int | None
    resource: str | None
    deferrable: bool

    @staticmethod
    def of(task: TaskState) -> Lane:
        """The lane a task waits in."""
        return Lane(task.kind, task.run_id, task.concurrency_key, task.max_concurrency,
                    task.resource, task.deferrable)


@dataclass(slots=True)
class Occupancy:
    """Live leases counted by every scope a limit applies to."""

    total: int = 0
    by_run: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    by_key: Counter[str] = field(default_factory=Counter)
    resources: dict[str, str] = field(default_factory=dict)
    """Resource -> the task holding it."""

    def add(self, task: TaskState, sign: int) -> None:
        """Counts a lease in (+1) or out (-1)."""
        self.total += sign
        self.by_run[task.run_id] += sign
        self.by_kind[task.kind] += sign
        if task.concurrency_key is not None:
            self.by_key[task.concurrency_key] += sign
        if task.resource is not None:
            if sign > 0:
                self.resources[task.resource] = task.task_id
            elif self.resources.get(task.resource) == task.task_id:
                del self.resources[task.resource]

    def counts(self) -> dict[str, object]:
        """Every non-zero count, for comparing with a recount."""
        return {"total": self.total, "run": +self.by_run, "kind": +self.by_kind,
                "key": +self.by_key, "resources": dict(self.resources)}

    def allows(self, lane: Lane, limits: Limits) -> bool:
        """Whether one more lease in ``lane`` stays within every limit."""
        if limits.max_running is not None and self.total >= limits.max_running:
            return False
        kind_limit = limits.by_kind.get(lane.kind)
        if kind_limit is not None and self.by_kind[lane.kind] >= kind_limit:
            return False
        run_limit = limits.by_run.get(lane.run_id)
        if run_limit is not None and self.by_run[lane.run_id] >= run_limit:
            return False
        if lane.concurrency_key is not None and lane.max_concurrency is not None \
                and self.by_key[lane.concurrency_key] >= lane.max_concurrency:
            return False
        return lane.resource is None or lane.resource not in self.resources


@dataclass(slots=True)
class _Entry:
    state: TaskState
    order: int
    """The sequence of its submission: FIFO within a priority is log order."""
    filed: Rank | None = None
    """Its rank in its lane while it is claimable; None otherwise."""


class TaskBoard:
    """Every open task, filed for claims (by lane) and for leases and deadlines."""

    def __init__(self) -> None:
        self._tasks: dict[str, _Entry] = {}
        self._lanes: dict[Lane, list[tuple[Rank, str]]] = {}
        self._kinds: dict[str, set[Lane]] = {}
        self._waiting: list[tuple[datetime, int, str]] = []
        self._leases: list[tuple[datetime, int, str]] = []
        self._deadlines: list[tuple[datetime, int, str]] = []
        self._held_by: dict[str, set[str]] = {}
        self._by_run: dict[str, set[str]] = {}
        self.occupancy = Occupancy()

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
        if state.state in _ENDED:
            self._drop(state)
            return
        entry = _Entry(state, order)
        self._tasks[state.task_id] = entry
        self._by_run.setdefault(state.run_id, set()).add(state.task_id)
        self._file(entry)

    def _file(self, entry: _Entry) -> None:
        state = entry.state
        if state.state in _HELD:
            self._hold(state)
            return
        due = state.due_at()
        if state.state == "queued" and due is None:
            self._ready(entry, retry=False)
        elif due is not None:
            heapq.heappush(self._waiting, (due, entry.order, state.task_id))

    def _ready(self, entry: _Entry, retry: bool) -> None:
        """Files a claimable task in its lane (and its lane under its kind)."""
        rank: Rank = (-entry.state.priority, 0 if retry else 1, entry.order)
        entry.filed = rank
        lane = Lane.of(entry.state)
        heapq.heappush(self._lanes.setdefault(lane, []), (rank, entry.state.task_id))
        self._kinds.setdefault(lane.kind, set()).add(lane)

    def _hold(self, state: TaskState) -> None:
        if state.worker_id is not None:
            self._held_by.setdefault(state.worker_id, set()).add(state.task_id)
        self.occupancy.add(state, +1)
        if state.lease_expires_at is not None:
            heapq.heappush(self._leases, (state.lease_expires_at, state.lease_epoch,
                                          state.task_id))
        if state.attempt_deadline is not None:
            heapq.heappush(self._deadlines, (state.attempt_deadline, state.lease_epoch,
                                             state.task_id))

    def _unhold(self, state: TaskState) -> None:
        if state.state not in _HELD:
            return
        self.occupancy.add(state, -1)
        if state.worker_id is not None:
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

    # -- reading ------------------------------------------------------------------

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

    def recount(self) -> Occupancy:
        """Occupancy counted afresh from the open tasks (what ``occupancy`` must equal)."""
        fresh = Occupancy()
        for state in self.tasks():
            if state.held:
                fresh.add(state, +1)
        return fresh

    def candidates(self, kinds: Collection[str], now: datetime, limits: Limits = NO_LIMITS,
                   waits: Callable[[Lane], bool] | None = None) -> Iterator[TaskState]:
        """Claimable tasks of ``kinds`` (empty: every kind) within the limits, best first.

        ``waits`` holds back a lane for reasons outside the board (a deferrable task's
        spent budget).
        """
        self._promote_due(now)
        wanted = [k for k in (kinds or list(self._kinds)) if k in self._kinds]
        heads = [head for kind in wanted for head in self._heads(kind)]
        for _, lane in sorted(heads, key=itemgetter(0)):
            if not self.occupancy.allows(lane, limits) or (waits is not None and waits(lane)):
                continue
            head = self._lane_head(lane)
            if head is not None:
                yield head

    def _heads(self, kind: str) -> list[tuple[Rank, Lane]]:
        """The head rank of every lane of ``kind`` with a claimable task (empty lanes go)."""
        lanes = self._kinds[kind]
        heads = []
        for lane in list(lanes):
            rank = self._clean_lane(lane)
            if rank is None:
                lanes.discard(lane)
            else:
                heads.append((rank, lane))
        if not lanes:
            del self._kinds[kind]
        return heads

    def _clean_lane(self, lane: Lane) -> Rank | None:
        """The lane's head rank once stale entries (no longer claimable) are dropped."""
        heap = self._lanes.get(lane)
        while heap:
            rank, task_id = heap[0]
            entry = self._tasks.get(task_id)
            if entry is not None and entry.filed == rank and entry.state.state in (
                    "queued", "retry_wait"):
                return rank
            heapq.heappop(heap)
        self._lanes.pop(lane, None)
        return None

    def _lane_head(self, lane: Lane) -> TaskState | None:
        if self._clean_lane(lane) is None:
            return None
        return self._tasks[self._lanes[lane][0][1]].state

    def _promote_due(self, now: datetime) -> None:
        """Files in their lanes the waiting tasks whose time has come."""
        while self._waiting and self._waiting[0][0] <= now:
            due, _, task_id = heapq.heappop(self._waiting)
            entry = self._tasks.get(task_id)
            if entry is not None and entry.filed is None and entry.state.due_at() == due:
                self._ready(entry, retry=entry.state.state == "retry_wait")

    def lapsed_leases(self, now: datetime) -> list[TaskState]:
        """Held tasks whose lease ran out before ``now``."""
        return self._past(self._leases, now, lambda s: s.lease_expires_at)

    def timed_out(self, now: datetime) -> list[TaskState]:
        """Held tasks whose attempt ran past its deadline by ``now``."""
        return self._past(self._deadlines, now, lambda s: s.attempt_deadline)

    def lapse_again(self, tasks: Sequence[TaskState]) -> None:
        """Puts lapsed leases back (their expiry did not land), to be found again; one that
        has moved on since is passed over then."""
        _push_back(self._leases, tasks, lambda s: s.lease_expires_at)

    def time_out_again(self, tasks: Sequence[TaskState]) -> None:
        """Puts passed deadlines back (their time-out did not land), as ``lapse_again``."""
        _push_back(self._deadlines, tasks, lambda s: s.attempt_deadline)

    def _past(self, heap: list[tuple[datetime, int, str]], now: datetime,
              moment: Callable[[TaskState], datetime | None]) -> list[TaskState]:
        found = []
        while heap and heap[0][0] <= now:
            at, epoch, task_id = heapq.heappop(heap)
            entry = self._tasks.get(task_id)
            if entry and entry.state.held and entry.state.lease_epoch == epoch \
                    and moment(entry.state) == at:
                found.append(entry.state)
        return found


def _push_back(heap: list[tuple[datetime, int, str]], tasks: Sequence[TaskState],
               moment: Callable[[TaskState], datetime | None]) -> None:
    for state in tasks:
        at = moment(state)
        if at is not None:
            heapq.heappush(heap, (at, state.lease_epoch, state.task_id))


def claim(board: TaskBoard, worker: WorkerState, kinds: Collection[str], ctx: Context,
          lease_ttl_s: float, limits: Limits = NO_LIMITS,
          waits: Callable[[Lane], bool] | None = None) -> Claim | None:
    """The best claimable task for ``worker`` within every limit, and its lease, or None.

    Refuses (``DomainError``) a worker that is not taking work or is at capacity; a task
    held back by a limit is simply not offered (it stays queued).
    """
    held = board.held_by(worker.worker_id)
    require_room(worker, len(held))
    for task in board.candidates(kinds, ctx.now, limits, waits):
        return Claim(task, lease(task, worker.worker_id, ctx, lease_ttl_s))
    return None
