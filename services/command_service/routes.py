"""Typed handlers keyed by command class, and the subject table derived from them.

A ``Route`` binds one command class to its handler: the subject comes from the class
(``SubmitTask.subject``), so no table of subjects is written by hand, and
``handlers.ROUTES`` is checked against every command class at import.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from events.base import Command
from events.commands import COMMANDS

from .repositories import CommandRecord
from .unit_of_work import Committed, UnitOfWork

if TYPE_CHECKING:
    from .service import CommandService

__all__ = [
    "CLAIM",
    "ORDINARY",
    "RESERVATION_WRITE",
    "RESERVE",
    "TASK_WRITE",
    "AnyRoute",
    "Extra",
    "Lane",
    "Outcome",
    "Position",
    "Route",
    "route_table",
    "target_of",
]

C = TypeVar("C", bound=Command)

ReplyFields = Mapping[str, object]
Extra = Callable[[Committed | None], Awaitable[ReplyFields]]
"""Reply fields beyond the envelope, computed once the decision is committed (or not)."""


class Position(Protocol):
    """Where an aggregate stands: what a reply names when nothing was written."""

    @property
    def aggregate_id(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def last_seq(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """A handler's answer: the aggregate the reply names, and any extra reply fields."""

    target: Position
    extra: Extra | None = None


@dataclass(frozen=True, slots=True)
class Lane:
    """How a command shares a partition of the log with the others in this replica.

    A partition (``task``: every task's events) has admissions (a claim) decided on all
    of it, alone, and ordinary writes that need only their own aggregate's check, many at
    once but never during an admission (services/command_service/partition.py).
    """

    partition: str | None = None
    """The partition it writes to, if any."""
    admission: bool = False
    """Whether it is decided on the whole partition (else on its own aggregate)."""


ORDINARY = Lane()
"""Its own aggregate's concurrency check is all it needs."""
TASK_WRITE = Lane("task")
"""Writes one task: concurrent with other task writes, never during a claim."""
CLAIM = Lane("task", admission=True)
"""Decided on every task (a claim): alone, once every task write is acknowledged."""
RESERVATION_WRITE = Lane("reservation")
"""Writes one reservation (a release): concurrent with others, never during a reserve."""
RESERVE = Lane("reservation", admission=True)
"""Decided on every reservation (budget.reserve): alone, like a claim."""


Handler = Callable[[UnitOfWork, C], Awaitable[Outcome]]
Replay = Callable[[UnitOfWork, C, CommandRecord], Awaitable[ReplyFields]]
Recognise = Callable[[UnitOfWork, C], Awaitable["Recognised | None"]]


@dataclass(frozen=True, slots=True)
class Recognised:
    """A retried command found on the log: what its first reply said."""

    aggregate_id: str
    record: CommandRecord
    extra: ReplyFields


class AnyRoute(Protocol):
    """A route, whatever its command class: what dispatch needs."""

    @property
    def subject(self) -> str: ...

    @property
    def command_class(self) -> type[Command]: ...

    async def execute(self, service: CommandService, body: bytes,
                      headers: Mapping[str, str]) -> dict[str, object]: ...

    async def send(self, service: CommandService, command: Command,
                   headers: Mapping[str, str]) -> dict[str, object]: ...


@dataclass(frozen=True)
class Route(Generic[C]):
    """One command class, its handler, its lane, and how a retry of it is answered."""

    command: type[C]
    handle: Handler[C]
    lane: Lane = ORDINARY
    replay: Replay[C] | None = None
    """Extra reply fields of a retried command, rebuilt from what it wrote."""
    recognise: Recognise[C] | None = None
    """Finds a retried command whose events are not on its target aggregate (a claim)."""

    @property
    def subject(self) -> str:
        """The subject it is served on, after ``runlog.cmd.``."""
        return self.command.subject

    @property
    def command_class(self) -> type[Command]:
        """The command class."""
        return self.command

    async def execute(self, service: CommandService, body: bytes,
                      headers: Mapping[str, str]) -> dict[str, object]:
        """Validates ``body`` as this route's command and runs it."""
        return await service.run(self, service.parse(self.command, body), headers)

    async def send(self, service: CommandService, command: Command,
                   headers: Mapping[str, str]) -> dict[str, object]:
        """Runs an already built command (a policy's) of this route's class."""
        if not isinstance(command, self.command):
            raise TypeError(f"{type(command).__name__} is not served on {self.subject}")
        return await service.run(self, service.filled(command), headers)


def target_of(command: Command) -> str:
    """The id of the aggregate a command addresses (filled in before any handler runs)."""
    target = command.target_id()
    if target is None:
        raise ValueError(f"{type(command).__name__} has no target id; parse fills it in")
    return target


def route_table(routes: Iterable[AnyRoute]) -> dict[str, AnyRoute]:
    """Routes by subject; raises unless every command class has exactly one."""
    table: dict[str, AnyRoute] = {}
    for route in routes:
        if route.subject in table:
            raise ValueError(f"two routes for {route.subject}")
        table[route.subject] = route
    missing = sorted(set(COMMANDS) - set(table))
    if missing:
        raise ValueError(f"commands without a handler: {missing}")
    return table
