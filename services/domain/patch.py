"""The Patch state machine: proposed, validated, applied, tested, then committed or undone."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

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
from .gate import CLEARED, GateState
from .machine import DomainError, InvalidHistory, TransitionTable

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


def _event_of(patch_id: str, command: Command) -> DomainEvent:
    """The event a command on an existing patch asks for."""
    match command:
        case ValidatePatch():
            return PatchValidationStarted(patch_id=patch_id)
        case AcceptPatch():
            return PatchValidated(patch_id=patch_id)
        case RejectPatch():
            return PatchRejected(patch_id=patch_id, reason=command.reason)
        case ApplyPatch():
            return PatchApplyStarted(patch_id=patch_id)
        case MarkPatchApplied():
            return PatchApplied(patch_id=patch_id)
        case TestPatch():
            return PatchTestStarted(patch_id=patch_id)
        case VerifyPatch():
            return PatchVerified(patch_id=patch_id)
        case CommitPatch():
            return PatchCommitted(patch_id=patch_id, commit=command.commit)
        case RollBackPatch():
            return PatchRolledBack(patch_id=patch_id, reason=command.reason)
    raise TypeError(f"not a patch command: {type(command).__name__}")


def decide(state: PatchState | None, command: Command, ctx: Context) -> list[DomainEvent]:
    """Returns the events a patch command produces, or raises ``DomainError``.

    ``patch.propose`` needs ``ctx.facts.run``; ``patch.commit`` reads the patch's gates
    from ``ctx.facts.gates``: each must be ``passed`` or ``waived``.
    """
    if isinstance(command, ProposePatch):
        return _propose(state, command, ctx)
    if state is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"patch {command.target_id()} does not exist")
    event = _event_of(state.patch_id, command)
    TABLE.require(state.state, event.type_name(), action_of(command), state.patch_id)
    if isinstance(command, CommitPatch):
        _require_gates_cleared(state.patch_id, ctx.facts.gates)
    return [event]


def _require_gates_cleared(patch_id: str, gates: Mapping[str, GateState | None]) -> None:
    """Refuses a commit while any gate of the patch is not passed or waived."""
    holding = {gate_id: gate.state if gate else "missing" for gate_id, gate in gates.items()
               if gate is None or gate.state not in CLEARED}
    if holding:
        gate_id, state = sorted(holding.items())[0]
        raise DomainError(
            ErrorCode.INVALID_TRANSITION,
            f"patch {patch_id} is held by gate {gate_id}, which is {state}; patch.commit "
            "needs every gate passed or waived",
            {"gates": dict(sorted(holding.items()))},
        )


def _propose(state: PatchState | None, command: ProposePatch, ctx: Context) -> list[DomainEvent]:
    if state is not None:
        raise DomainError(ErrorCode.ALREADY_EXISTS, f"patch {state.patch_id} already exists")
    if command.patch_id is None:
        raise ValueError("the service assigns a patch_id before deciding")
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
    if state is None:
        raise InvalidHistory(f"patch: {event.type_name()} before PatchProposed")
    return replace(state, state=target)
