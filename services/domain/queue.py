"""The Queue machine: the settings of one work kind's queue, shared by every run."""

from __future__ import annotations

from dataclasses import dataclass, replace

from events.base import Command, DomainEvent
from events.catalog.queue import QueueConfigured
from events.commands.queue import ConfigureQueue

from .context import Context
from .machine import InvalidHistory, TransitionTable

__all__ = ["TABLE", "QueueState", "decide", "evolve"]

TABLE = TransitionTable(
    aggregate="queue",
    states=("configured",),
    edges={
        (None, "QueueConfigured"): "configured",
        ("configured", "QueueConfigured"): "configured",
    },
)


@dataclass(frozen=True, slots=True)
class QueueState:
    """A kind's queue: at most ``max_running`` of its tasks leased at once (None: any)."""

    kind: str
    state: str
    max_running: int | None = None


def decide(state: QueueState | None, command: Command, ctx: Context) -> list[DomainEvent]:
    """``queue.configure``: nothing when the setting is already that."""
    if not isinstance(command, ConfigureQueue):
        raise TypeError(f"not a queue command: {type(command).__name__}")
    if state is not None and state.max_running == command.max_running:
        return []
    return [QueueConfigured(kind=command.kind, max_running=command.max_running)]


def evolve(state: QueueState | None, event: DomainEvent) -> QueueState:
    """Returns the queue's state after ``event`` (which must fit the table)."""
    target = TABLE.next_state(state.state if state else None, event.type_name())
    if not isinstance(event, QueueConfigured):
        raise InvalidHistory(f"queue: {event.type_name()} is not a queue event")
    if state is None:
        return QueueState(kind=event.kind, state=target, max_running=event.max_running)
    return replace(state, state=target, max_running=event.max_running)
