"""Preconditions several machines share: the run a thing belongs to, dependencies, actions."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

from events.base import Command
from events.errors import ErrorCode

from .machine import DomainError
from .run import RunState

__all__ = ["Stateful", "action_of", "require_dependencies_done", "require_run"]


class Stateful(Protocol):
    """An aggregate state with a state name."""

    @property
    def state(self) -> str:
        """The state machine's state."""
        ...


def action_of(command: Command) -> str:
    """The action named in error messages: the subject's last token (``start``)."""
    return command.subject.rsplit(".", 1)[-1]


def require_run(run: RunState | None, run_id: str, action: str, allowed: Collection[str]
                ) -> RunState:
    """Returns the run the service loaded for ``run_id``, or refuses a missing or wrong one."""
    if run is None or run.run_id != run_id:
        raise DomainError(ErrorCode.NOT_FOUND, f"run {run_id} does not exist")
    if run.state not in allowed:
        raise DomainError(
            ErrorCode.INVALID_TRANSITION,
            f"run {run_id} is {run.state}; {action} needs {'/'.join(allowed)}",
            {"state": run.state, "allowed_from": list(allowed)},
        )
    return run


def require_dependencies_done(
    aggregate: str,
    owner_id: str,
    depends_on: Sequence[str],
    loaded: Mapping[str, Stateful | None],
    done: Collection[str],
) -> None:
    """Refuses unless every dependency was loaded (``loaded[id]``) and is in a ``done`` state."""
    for dependency in depends_on:
        found = loaded.get(dependency)
        if found is None:
            raise DomainError(
                ErrorCode.NOT_FOUND,
                f"{aggregate} {dependency}, a dependency of {owner_id}, does not exist",
                {"dependency": dependency},
            )
        if found.state not in done:
            raise DomainError(
                ErrorCode.INVALID_TRANSITION,
                f"{aggregate} {owner_id} depends on {dependency}, which is {found.state}",
                {"dependency": dependency, "state": found.state, "needs": sorted(done)},
            )
