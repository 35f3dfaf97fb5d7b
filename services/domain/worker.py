"""The Worker state machine: registration, liveness and draining.

The tasks a worker holds are not events of the worker: they are its live leases, the
``TaskLeased`` events not yet ended, which ``services/domain/claims.py`` counts against
``capacity`` at claim time. A worker shows as ``busy`` in the read models while it holds
one. (Logs written by older versions carry ``WorkerTaskAssigned`` / ``WorkerTaskReleased``
/ ``WorkerBecameIdle``; they still fold, and only move the state name.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from events.base import Command, DomainEvent
from events.catalog.worker import (
    WorkerDeregistered,
    WorkerDraining,
    WorkerHeartbeatReceived,
    WorkerLost,
    WorkerRegistered,
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
from .machine import DomainError, InvalidHistory, TransitionTable

__all__ = ["TABLE", "WorkerState", "decide", "evolve", "require_room"]

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
        **{(s, "WorkerDeregistered"): "offline" for s in ("idle", "busy", "draining", "lost")},
        **{(s, "WorkerLost"): "lost" for s in _LIVE},
    },
)


@dataclass(frozen=True, slots=True)
class WorkerState:
    """A worker's registration and liveness."""

    worker_id: str
    state: str
    capacity: int = 1
    kinds: tuple[str, ...] = ()
    last_heartbeat_at: datetime | None = None

    @property
    def accepting(self) -> bool:
        """Whether it may take new tasks (live, not draining)."""
        return self.state in ("idle", "busy")

    def free_slots(self, held: int) -> int:
        """How many more tasks it may take while holding ``held``."""
        return self.capacity - held if self.accepting else 0

    def serves(self, kind: str) -> bool:
        """Whether the worker takes tasks of ``kind`` (no kinds registered: every kind)."""
        return not self.kinds or kind in self.kinds


def require_room(state: WorkerState, held: int) -> None:
    """Refuses a claim by a worker that is not taking work or already holds ``capacity``."""
    TABLE.require(state.state, "WorkerTaskAssigned", "assign", state.worker_id)
    if held >= state.capacity:
        raise DomainError(
            ErrorCode.INVALID_TRANSITION,
            f"worker {state.worker_id} is at capacity ({held} of {state.capacity})",
            {"capacity": state.capacity, "held": held},
        )


def decide(state: WorkerState | None, command: Command, ctx: Context) -> list[DomainEvent]:
    """Returns the events a worker command produces, or raises ``DomainError``.

    ``worker.drain``, ``worker.deregister`` and ``worker.mark_lost`` read the tasks the
    worker holds from ``ctx.facts.held``.
    """
    if isinstance(command, RegisterWorker):
        return _register(state, command, ctx)
    if state is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"worker {command.target_id()} does not exist")
    match command:
        case HeartbeatWorker():
            return _checked(state, command,
                            WorkerHeartbeatReceived(worker_id=state.worker_id, at=ctx.now))
        case DrainWorker():
            return _drain(state, command, ctx.facts.held)
        case DeregisterWorker():
            return _deregister(state, command, ctx.facts.held)
        case MarkWorkerLost():
            return _checked(state, command, WorkerLost(
                worker_id=state.worker_id, task_ids=sorted(ctx.facts.held),
                last_heartbeat_at=state.last_heartbeat_at))
    raise TypeError(f"not a worker command: {type(command).__name__}")


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


def _drain(state: WorkerState, command: DrainWorker, held: frozenset[str]
           ) -> list[DomainEvent]:
    if state.state == "draining":
        return []  # already doing what was asked
    if held:
        return _checked(state, command, WorkerDraining(worker_id=state.worker_id))
    return _checked(state, command, WorkerDeregistered(worker_id=state.worker_id))


def _deregister(state: WorkerState, command: DeregisterWorker, held: frozenset[str]
                ) -> list[DomainEvent]:
    if held:
        if state.state == "draining":
            return []  # the drain policy retires it once its last lease ends
        return _checked(state, command, WorkerDraining(worker_id=state.worker_id))
    return _checked(state, command, WorkerDeregistered(worker_id=state.worker_id))


def evolve(state: WorkerState | None, event: DomainEvent) -> WorkerState:
    """Returns the worker's state after ``event`` (which must fit the table)."""
    target = TABLE.next_state(state.state if state else None, event.type_name())
    if isinstance(event, WorkerRegistered):
        return WorkerState(worker_id=event.worker_id, state=target, capacity=event.capacity,
                           kinds=tuple(event.kinds), last_heartbeat_at=event.at)
    if state is None:
        raise InvalidHistory(f"worker: {event.type_name()} before WorkerRegistered")
    if isinstance(event, WorkerHeartbeatReceived):
        return replace(state, state=target, last_heartbeat_at=event.at)
    return replace(state, state=target)
