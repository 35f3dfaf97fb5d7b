"""The Patch state machine: proposed, validated, applied, tested, then committed or undone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from events.base import Command, DomainEvent
from events.catalog.patch import (
    PatchApplied,
    PatchApplyStarted,
    PatchCommitted,
    PatchProposed,
    PatchRejected,
    PatchRolledBack,
    PatchTestStarted,
    PatchValidated,
    PatchValidationStarted,
    PatchVerified,
)
from events.commands.patch import (
    AcceptPatch,
    ApplyPatch,
    CommitPatch,
    MarkPatchApplied,
    ProposePatch,
    RejectPatch,
    RollBackPatch,
    TestPatch,
    ValidatePatch,
    VerifyPatch,
)
from events.errors import ErrorCode

from .checks import action_of, require_run
from .context import Context
from .machine import DomainError, TransitionTable

__all__ = ["TABLE", "PatchState", "decide", "evolve"]

_IN_TREE = ("applying", "applied", "testing", "verified")

TABLE = TransitionTable(
    aggregate="patch",
    states=("proposed", "validating", "validated", "rejected", *_IN_TREE, "committed",
            "rolled_back"),
    edges={
        (None, "PatchProposed"): "proposed",
        ("proposed", "PatchValidationStarted"): "validating",
        ("validating", "PatchValidated"): "validated",
        **{(s, "PatchRejected"): "rejected" for s in ("proposed", "validating", "validated")},
        ("validated", "PatchApplyStarted"): "applying",
        ("applying", "PatchApplied"): "applied",
        ("applied", "PatchTestStarted"): "testing",
        ("testing", "PatchVerified"): "verified",
        ("verified", "PatchCommitted"): "committed",
        # Once the patch touched the working tree, undoing it is a rollback, not a rejection.
        **{(s, "PatchRolledBack"): "rolled_back" for s in _IN_TREE},
    },
    terminal=frozenset({"rejected", "committed", "rolled_back"}),
)


@dataclass(frozen=True, slots=True)
class PatchState:
    """What the rules need to know about a patch."""

    patch_id: str
    run_id: str
    state: str
    title: str
    task_id: str | None = None
    files: tuple[str, ...] = ()


_EVENTS: dict[type[Command], Callable[[str, Any], DomainEvent]] = {
    ValidatePatch: lambda i, c: PatchValidationStarted(patch_id=i),
    AcceptPatch: lambda i, c: PatchValidated(patch_id=i),
    RejectPatch: lambda i, c: PatchRejected(patch_id=i, reason=c.reason),
    ApplyPatch: lambda i, c: PatchApplyStarted(patch_id=i),
    MarkPatchApplied: lambda i, c: PatchApplied(patch_id=i),
    TestPatch: lambda i, c: PatchTestStarted(patch_id=i),
    VerifyPatch: lambda i, c: PatchVerified(patch_id=i),
    CommitPatch: lambda i, c: PatchCommitted(patch_id=i, commit=c.commit),
    RollBackPatch: lambda i, c: PatchRolledBack(patch_id=i, reason=c.reason),
}


def decide(state: PatchState | None, command: Command, ctx: Context) -> list[DomainEvent]:
    """Returns the events a patch command produces, or raises ``DomainError``.

    ``patch.propose`` needs ``ctx.facts.run``.
    """
    if isinstance(command, ProposePatch):
        return _propose(state, command, ctx)
    if state is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"patch {command.target_id()} does not exist")
    build = _EVENTS.get(type(command))
    if build is None:
        raise TypeError(f"not a patch command: {type(command).__name__}")
    event = build(state.patch_id, command)
    TABLE.require(state.state, event.type_name(), action_of(command), state.patch_id)
    return [event]


def _propose(state: PatchState | None, command: ProposePatch, ctx: Context) -> list[DomainEvent]:
    if state is not None:
        raise DomainError(ErrorCode.ALREADY_EXISTS, f"patch {state.patch_id} already exists")
    assert command.patch_id is not None, "the service assigns an id before deciding"
    require_run(ctx.facts.run, command.run_id, "patch.propose", ("running",))
    return [PatchProposed(patch_id=command.patch_id, run_id=command.run_id,
                          task_id=command.task_id, title=command.title,
                          files=list(dict.fromkeys(command.files)))]


def evolve(state: PatchState | None, event: DomainEvent) -> PatchState:
    """Returns the patch's state after ``event`` (which must fit the table)."""
    target = TABLE.next_state(state.state if state else None, event.type_name())
    if isinstance(event, PatchProposed):
        return PatchState(patch_id=event.patch_id, run_id=event.run_id, state=target,
                          title=event.title, task_id=event.task_id, files=tuple(event.files))
    assert state is not None
    return replace(state, state=target)
