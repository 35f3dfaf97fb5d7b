"""The Worker state machine: registration, liveness, and the task slots a worker holds.

``busy`` means holding at least one task (``idle``: none); ``capacity`` bounds how many.
The service appends ``assign`` with the task's ``TaskLeased`` and ``release`` with
whatever ends the task's lease, each pair in one atomic batch on the two subjects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from events.base import Command, DomainEvent
from events.catalog.worker import (
    WorkerBecameIdle,
    WorkerDeregistered,
    WorkerDraining,
    WorkerHeartbeatReceived,
    WorkerLost,
    WorkerRegistered,
    WorkerTaskAssigned,
    WorkerTaskReleased,
)
from events.commands.worker import (
    DeregisterWorker,
    DrainWorker,
    HeartbeatWorker,
    MarkWorkerLost,
    RegisterWorker,
)
from events.errors import ErrorCode

from .checks import action_of
from .context import Context
from .machine import DomainError, TransitionTable

__all__ = ["TABLE", "WorkerState", "assign", "decide", "evolve", "release"]

_LIVE = ("idle", "busy", "draining")

TABLE = TransitionTable(
    aggregate="worker",
    states=("idle", "busy", "draining", "lost", "offline"),
    edges={
        (None, "WorkerRegistered"): "idle",
        # A restarted worker registers again under its old id.
        ("offline", "WorkerRegistered"): "idle",
        ("lost", "WorkerRegistered"): "idle",
        **{(s, "WorkerHeartbeatReceived"): s for s in _LIVE},
        # A lost worker holds nothing (its slots were freed), so it comes back idle.
        ("lost", "WorkerHeartbeatReceived"): "idle",
        ("idle", "WorkerTaskAssigned"): "busy",
        ("busy", "WorkerTaskAssigned"): "busy",
        ("busy", "WorkerTaskReleased"): "busy",
        ("draining", "WorkerTaskReleased"): "draining",
        ("busy", "WorkerBecameIdle"): "idle",
        ("idle", "WorkerDraining"): "draining",
        ("busy", "WorkerDraining"): "draining",
        **{(s, "WorkerDeregistered"): "offline" for s in ("idle", "draining", "lost")},
        **{(s, "WorkerLost"): "lost" for s in _LIVE},
    },
)


@dataclass(frozen=True, slots=True)
class WorkerState:
    """A worker's registration, liveness and the tasks it holds."""

    worker_id: str
    state: str
    capacity: int = 1
    kinds: tuple[str, ...] = ()
    tasks: frozenset[str] = frozenset()
    last_heartbeat_at: datetime | None = None

    @property
    def free_slots(self) -> int:
        """How many more tasks ``assign`` would accept now."""
        return self.capacity - len(self.tasks) if self.state in ("idle", "busy") else 0

    def serves(self, kind: str) -> bool:
        """Whether the worker takes tasks of ``kind`` (no kinds registered: every kind)."""
        return not self.kinds or kind in self.kinds


def assign(state: WorkerState | None, task_id: str, ctx: Context) -> list[DomainEvent]:
    """Gives the worker one more task, or refuses when it is full or not taking work."""
    if state is None:
        raise DomainError(ErrorCode.NOT_FOUND, "worker does not exist")
    TABLE.require(state.state, "WorkerTaskAssigned", "assign", state.worker_id)
    if task_id in state.tasks:
        raise DomainError(ErrorCode.INVALID_TRANSITION,
                          f"worker {state.worker_id} already holds task {task_id}")
    if state.free_slots <= 0:
        raise DomainError(
            ErrorCode.INVALID_TRANSITION,
            f"worker {state.worker_id} is at capacity ({len(state.tasks)} of {state.capacity})",
            {"capacity": state.capacity, "held": len(state.tasks)},
        )
    return [WorkerTaskAssigned(worker_id=state.worker_id, task_id=task_id)]


def release(state: WorkerState | None, task_id: str, ctx: Context) -> list[DomainEvent]:
    """Frees the task's slot: idle when it was the last one, offline when draining.

    Releasing a task the worker does not hold writes nothing, since a lost worker's
    slots were already freed and a release may be retried.
    """
    if state is None:
        raise DomainError(ErrorCode.NOT_FOUND, "worker does not exist")
    if task_id not in state.tasks:
        return []
    released = WorkerTaskReleased(worker_id=state.worker_id, task_id=task_id)
    return [released, *_after_last_release(evolve(state, released))]


def _after_last_release(state: WorkerState) -> list[DomainEvent]:
    if state.tasks:
        return []
    if state.state == "draining":
        return [WorkerDeregistered(worker_id=state.worker_id)]
    return [WorkerBecameIdle(worker_id=state.worker_id)]


def decide(state: WorkerState | None, command: Command, ctx: Context) -> list[DomainEvent]:
    """Returns the events a worker command produces, or raises ``DomainError``."""
    if isinstance(command, RegisterWorker):
        return _register(state, command, ctx)
    if state is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"worker {command.target_id()} does not exist")
    handler = _HANDLERS.get(type(command))
    if handler is None:
        raise TypeError(f"not a worker command: {type(command).__name__}")
    return handler(state, command, ctx)


def _register(
    state: WorkerState | None, command: RegisterWorker, ctx: Context
) -> list[DomainEvent]:
    if state is not None and state.state not in ("offline", "lost"):
        raise DomainError(ErrorCode.ALREADY_EXISTS,
                          f"worker {state.worker_id} already exists and is {state.state}")
    return [WorkerRegistered(worker_id=command.worker_id, kinds=list(command.kinds),
                             capacity=command.capacity, at=ctx.now)]


def _checked(state: WorkerState, command: Command, event: DomainEvent) -> list[DomainEvent]:
    TABLE.require(state.state, event.type_name(), action_of(command), state.worker_id)
    return [event]


def _drain(state: WorkerState, command: DrainWorker, ctx: Context) -> list[DomainEvent]:
    if state.state == "draining":
        return []  # already doing what was asked
    draining = _checked(state, command, WorkerDraining(worker_id=state.worker_id))
    gone = [] if state.tasks else [WorkerDeregistered(worker_id=state.worker_id)]
    return [*draining, *gone]


def _deregister(state: WorkerState, command: DeregisterWorker, ctx: Context) -> list[DomainEvent]:
    if state.state == "draining":
        return []  # it goes offline by itself when its last task is released
    if state.tasks:
        return _checked(state, command, WorkerDraining(worker_id=state.worker_id))
    return _checked(state, command, WorkerDeregistered(worker_id=state.worker_id))


def _mark_lost(state: WorkerState, command: MarkWorkerLost, ctx: Context) -> list[DomainEvent]:
    return _checked(state, command, WorkerLost(
        worker_id=state.worker_id, task_ids=sorted(state.tasks),
        last_heartbeat_at=state.last_heartbeat_at))


_HANDLERS: dict[type[Command], Callable[[WorkerState, Any, Context], list[DomainEvent]]] = {
    HeartbeatWorker: lambda s, c, ctx: _checked(
        s, c, WorkerHeartbeatReceived(worker_id=s.worker_id, at=ctx.now)),
    DrainWorker: _drain,
    DeregisterWorker: _deregister,
    MarkWorkerLost: _mark_lost,
}


def evolve(state: WorkerState | None, event: DomainEvent) -> WorkerState:
    """Returns the worker's state after ``event`` (which must fit the table)."""
    target = TABLE.next_state(state.state if state else None, event.type_name())
    if isinstance(event, WorkerRegistered):
        return WorkerState(worker_id=event.worker_id, state=target, capacity=event.capacity,
                           kinds=tuple(event.kinds), last_heartbeat_at=event.at)
    assert state is not None
    changes = _CHANGES.get(type(event))
    return replace(state, state=target, **(changes(state, event) if changes else {}))


_CHANGES: dict[type[DomainEvent], Callable[[WorkerState, Any], dict[str, Any]]] = {
    WorkerHeartbeatReceived: lambda s, e: {"last_heartbeat_at": e.at},
    WorkerTaskAssigned: lambda s, e: {"tasks": s.tasks | {e.task_id}},
    WorkerTaskReleased: lambda s, e: {"tasks": s.tasks - {e.task_id}},
    # The lease policy expires the held tasks; the worker's slots are free from now on.
    WorkerLost: lambda s, e: {"tasks": frozenset()},
}
