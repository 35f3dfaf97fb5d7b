"""The Workstream state machine: a slice of a run's work that waits on other workstreams."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

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
from .machine import DomainError, TransitionTable

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


_Build = Callable[[str, Any], DomainEvent]

_EVENTS: dict[type[Command], _Build] = {
    MarkWorkstreamReady: lambda i, c: WorkstreamMarkedReady(workstream_id=i),
    StartWorkstream: lambda i, c: WorkstreamStarted(workstream_id=i),
    PauseWorkstream: lambda i, c: WorkstreamPaused(workstream_id=i),
    ResumeWorkstream: lambda i, c: WorkstreamResumed(workstream_id=i),
    BlockWorkstream: lambda i, c: WorkstreamBlocked(workstream_id=i, reason=c.reason),
    UnblockWorkstream: lambda i, c: WorkstreamUnblocked(workstream_id=i),
    SucceedWorkstream: lambda i, c: WorkstreamSucceeded(workstream_id=i),
    FailWorkstream: lambda i, c: WorkstreamFailed(workstream_id=i, reason=c.reason),
    CancelWorkstream: lambda i, c: WorkstreamCancelled(workstream_id=i, reason=c.reason),
    SkipWorkstream: lambda i, c: WorkstreamSkipped(workstream_id=i, reason=c.reason),
}


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
    build = _EVENTS.get(type(command))
    if build is None:
        raise TypeError(f"not a workstream command: {type(command).__name__}")
    event = build(state.workstream_id, command)
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
    assert command.workstream_id is not None, "the service assigns an id before deciding"
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
    assert state is not None
    return replace(state, state=target)
