"""The test gate state machine: one check that must pass (or be waived) before going on."""

from __future__ import annotations

from dataclasses import dataclass, replace

from events.base import Command, DomainEvent
from events.catalog.gate import GateCreated, GateFailed, GatePassed, GateStarted, GateWaived
from events.commands.gate import CreateGate, FailGate, PassGate, StartGate, WaiveGate
from events.errors import ErrorCode

from .checks import action_of, require_run
from .context import Context
from .machine import DomainError, InvalidHistory, TransitionTable

__all__ = ["CLEARED", "TABLE", "GateState", "decide", "evolve"]

CLEARED = frozenset({"passed", "waived"})
"""The states in which a gate no longer holds anything back."""

TABLE = TransitionTable(
    aggregate="gate",
    states=("pending", "running", "passed", "failed", "waived"),
    edges={
        (None, "GateCreated"): "pending",
        ("pending", "GateStarted"): "running",
        ("running", "GatePassed"): "passed",
        ("running", "GateFailed"): "failed",
        # A waiver is a person's decision and may come before, during or after the check.
        **{(s, "GateWaived"): "waived" for s in ("pending", "running", "failed")},
    },
    terminal=CLEARED,
)


@dataclass(frozen=True, slots=True)
class GateState:
    """What the rules need to know about a gate."""

    gate_id: str
    run_id: str
    name: str
    state: str
    patch_id: str | None = None


def _event_of(gate_id: str, command: Command) -> DomainEvent:
    """The event a command on an existing gate asks for."""
    match command:
        case StartGate():
            return GateStarted(gate_id=gate_id)
        case PassGate():
            return GatePassed(gate_id=gate_id)
        case FailGate():
            return GateFailed(gate_id=gate_id, reason=command.reason)
        case WaiveGate():
            return GateWaived(gate_id=gate_id, reason=command.reason, by=command.by)
    raise TypeError(f"not a gate command: {type(command).__name__}")


def decide(state: GateState | None, command: Command, ctx: Context) -> list[DomainEvent]:
    """Returns the events a gate command produces, or raises ``DomainError``.

    ``gate.create`` needs ``ctx.facts.run``.
    """
    if isinstance(command, CreateGate):
        return _create(state, command, ctx)
    if state is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"gate {command.target_id()} does not exist")
    event = _event_of(state.gate_id, command)
    TABLE.require(state.state, event.type_name(), action_of(command), state.gate_id)
    return [event]


def _create(state: GateState | None, command: CreateGate, ctx: Context) -> list[DomainEvent]:
    if state is not None:
        raise DomainError(ErrorCode.ALREADY_EXISTS, f"gate {state.gate_id} already exists")
    if command.gate_id is None:
        raise ValueError("the service assigns a gate_id before deciding")
    require_run(ctx.facts.run, command.run_id, "gate.create", ("pending", "running"))
    return [GateCreated(gate_id=command.gate_id, run_id=command.run_id,
                        patch_id=command.patch_id, name=command.name)]


def evolve(state: GateState | None, event: DomainEvent) -> GateState:
    """Returns the gate's state after ``event`` (which must fit the table)."""
    target = TABLE.next_state(state.state if state else None, event.type_name())
    if isinstance(event, GateCreated):
        return GateState(gate_id=event.gate_id, run_id=event.run_id, name=event.name,
                         state=target, patch_id=event.patch_id)
    if state is None:
        raise InvalidHistory(f"gate: {event.type_name()} before GateCreated")
    return replace(state, state=target)
