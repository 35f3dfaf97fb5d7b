"""Transition tables as data, and the domain's error."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from events.errors import ErrorCode

__all__ = ["DomainError", "InvalidHistory", "Target", "TransitionTable", "targets_of"]


def targets_of(target: Target) -> tuple[str, ...]:
    """The states an edge may lead to."""
    return (target,) if isinstance(target, str) else target


class DomainError(Exception):
    """A command the rules refuse; it carries the reply's error code."""

    def __init__(self, code: ErrorCode, message: str, details: dict[str, object] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


class InvalidHistory(Exception):
    """A stored history breaks the transition table: a bug or a corrupted log."""


Target = str | tuple[str, ...]
"""Where an edge leads: one state, or the states an event may choose between."""


@dataclass(frozen=True)
class TransitionTable:
    """``(state, event type) -> state``; creation events start from no state (None).

    An edge may list several targets when the event itself says which one it leads
    to (``DomainEvent.chosen_state``): a task submitted straight into ``blocked`` is one
    event, not a submission and a block appended together.
    """

    aggregate: str
    states: tuple[str, ...]
    edges: Mapping[tuple[str | None, str], Target]
    terminal: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        for (source, event_type), target in self.edges.items():
            for state in (source, *targets_of(target)):
                if state is not None and state not in self.states:
                    raise ValueError(f"{self.aggregate}: {event_type} uses unknown state {state}")

    def next_state(self, state: str | None, event_type: str, chosen: str | None = None) -> str:
        """Returns the state after ``event_type``, or raises ``InvalidHistory``."""
        target = self.edges.get((state, event_type))
        if target is None:
            raise InvalidHistory(f"{self.aggregate}: {event_type} is not allowed in {state}")
        if isinstance(target, str):
            return target
        if chosen not in target:
            raise InvalidHistory(f"{self.aggregate}: {event_type} leads to one of {target}, "
                                 f"not {chosen}")
        return chosen

    def sources(self, event_type: str) -> list[str]:
        """The states in which ``event_type`` may happen."""
        return [s for (s, e) in self.edges if e == event_type and s is not None]

    def require(self, state: str, event_type: str, action: str, aggregate_id: str) -> None:
        """Raises ``invalid_transition`` unless ``event_type`` may follow ``state``."""
        if (state, event_type) not in self.edges:
            needs = "/".join(self.sources(event_type)) or "no state"
            raise DomainError(
                ErrorCode.INVALID_TRANSITION,
                f"{self.aggregate} {aggregate_id} is {state}; {action} needs {needs}",
                {"state": state, "allowed_from": self.sources(event_type)},
            )

    def event_types(self) -> set[str]:
        """Every event type the table knows."""
        return {e for (_, e) in self.edges}
