"""The Workstream state machine: a slice of a run's work that waits on other workstreams."""

from __future__ import annotations

from dataclasses import dataclass, replace

from events.base import Command, DomainEvent
from events.catalog.workstream import (
    WorkstreamBlocked,
    WorkstreamCancelled,
    WorkstreamCreated,
    WorkstreamFailed,
    WorkstreamMarkedReady,
    WorkstreamPaused,
    WorkstreamResumed,
    WorkstreamSkipped,
    WorkstreamStarted,
    WorkstreamSucceeded,
    WorkstreamUnblocked,
)
from events.commands.workstream import (
    BlockWorkstream,
    CancelWorkstream,
    CreateWorkstream,
    FailWorkstream,
    MarkWorkstreamReady,
    PauseWorkstream,
    ResumeWorkstream,
    SkipWorkstream,
    StartWorkstream,
    SucceedWorkstream,
    UnblockWorkstream,
)
from events.errors import ErrorCode

from .checks import action_of, require_dependencies_done, require_run
from .context import Context
from .machine import DomainError, InvalidHistory, TransitionTable

__all__ = ["DONE", "TABLE", "WorkstreamState", "decide", "evolve"]

_OPEN = ("pending", "ready", "running", "paused", "blocked")
_ENDED = ("succeeded", "failed", "cancelled", "skipped")
DONE = frozenset({"succeeded", "skipped"})
"""The states that let a dependant workstream become ready."""

TABLE = TransitionTable(
    aggregate="workstream",
    states=(*_OPEN, *_ENDED),
    edges={
        (None, "WorkstreamCreated"): "pending",
        ("pending", "WorkstreamMarkedReady"): "ready",
        ("ready", "WorkstreamStarted"): "running",
        ("running", "WorkstreamPaused"): "paused",
        ("paused", "WorkstreamResumed"): "running",
        ("ready", "WorkstreamBlocked"): "blocked",
        ("running", "WorkstreamBlocked"): "blocked",
        # One target per edge keeps the table data: an unblocked workstream is
        # ready again and is started again, whether it had run before or not.
        ("blocked", "WorkstreamUnblocked"): "ready",
        ("running", "WorkstreamSucceeded"): "succeeded",
        **{(s, "WorkstreamFailed"): "failed" for s in ("running", "paused", "blocked")},
        **{(s, "WorkstreamCancelled"): "cancelled" for s in _OPEN},
        # Skipping is for work that never ran; a blocked one may have.
        **{(s, "WorkstreamSkipped"): "skipped" for s in ("pending", "ready")},
    },
    terminal=frozenset(_ENDED),
)


@dataclass(frozen=True, slots=True)
class WorkstreamState:
    """What the rules need to know about a workstream."""

    workstream_id: str
    run_id: str
    name: str
    state: str
    depends_on: tuple[str, ...] = ()


def _event_of(workstream_id: str, command: Command) -> DomainEvent:
    """The event a command on an existing workstream asks for."""
    match command:
        case MarkWorkstreamReady():
            return WorkstreamMarkedReady(workstream_id=workstream_id)
        case StartWorkstream():
            return WorkstreamStarted(workstream_id=workstream_id)
        case PauseWorkstream():
            return WorkstreamPaused(workstream_id=workstream_id)
        case ResumeWorkstream():
            return WorkstreamResumed(workstream_id=workstream_id)
        case BlockWorkstream():
            return WorkstreamBlocked(workstream_id=workstream_id, reason=command.reason)
        case UnblockWorkstream():
            return WorkstreamUnblocked(workstream_id=workstream_id)
        case SucceedWorkstream():
            return WorkstreamSucceeded(workstream_id=workstream_id)
        case FailWorkstream():
            return WorkstreamFailed(workstream_id=workstream_id, reason=command.reason)
        case CancelWorkstream():
            return WorkstreamCancelled(workstream_id=workstream_id, reason=command.reason)
        case SkipWorkstream():
            return WorkstreamSkipped(workstream_id=workstream_id, reason=command.reason)
    raise TypeError(f"not a workstream command: {type(command).__name__}")


def decide(state: WorkstreamState | None, command: Command, ctx: Context) -> list[DomainEvent]:
    """Returns the events a workstream command produces, or raises ``DomainError``.

    ``workstream.create`` needs ``ctx.facts.run``;
    ``workstream.ready`` of a workstream with dependencies needs ``ctx.facts.workstreams`` =
    a mapping of each dependency's id to its ``WorkstreamState`` (or None).
    """
    if isinstance(command, CreateWorkstream):
        return _create(state, command, ctx)
    if state is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"workstream {command.target_id()} does not exist")
    event = _event_of(state.workstream_id, command)
    TABLE.require(state.state, event.type_name(), action_of(command), state.workstream_id)
    if isinstance(command, MarkWorkstreamReady):
        require_dependencies_done("workstream", state.workstream_id, state.depends_on,
                                  ctx.facts.workstreams, DONE)
    return [event]


def _create(
    state: WorkstreamState | None, command: CreateWorkstream, ctx: Context
) -> list[DomainEvent]:
    if state is not None:
        raise DomainError(ErrorCode.ALREADY_EXISTS,
                          f"workstream {state.workstream_id} already exists")
    if command.workstream_id is None:
        raise ValueError("the service assigns a workstream_id before deciding")
    if command.workstream_id in command.depends_on:
        raise DomainError(ErrorCode.VALIDATION_FAILED,
                          f"workstream {command.workstream_id} cannot depend on itself")
    require_run(ctx.facts.run, command.run_id, "workstream.create", ("pending", "running"))
    depends_on = list(dict.fromkeys(command.depends_on))  # duplicates say nothing more
    return [WorkstreamCreated(workstream_id=command.workstream_id, run_id=command.run_id,
                              name=command.name, depends_on=depends_on)]


def evolve(state: WorkstreamState | None, event: DomainEvent) -> WorkstreamState:
    """Returns the workstream's state after ``event`` (which must fit the table)."""
    target = TABLE.next_state(state.state if state else None, event.type_name())
    if isinstance(event, WorkstreamCreated):
        return WorkstreamState(workstream_id=event.workstream_id, run_id=event.run_id,
                               name=event.name, state=target,
                               depends_on=tuple(event.depends_on))
    if state is None:
        raise InvalidHistory(f"workstream: {event.type_name()} before WorkstreamCreated")
    return replace(state, state=target)
