"""Every command, by the subject it is served on (after ``runlog.cmd.``)."""

from __future__ import annotations

from events.base import Command

from . import (
    breaker,
    budget,
    cache,
    gate,
    model,
    patch,
    queue,
    reservation,
    routing,
    run,
    task,
    worker,
    workstream,
)

__all__ = ["COMMANDS", "command_class"]

_MODULES = (run, workstream, task, worker, breaker, patch, gate, model, budget, queue, routing,
            cache, reservation)

COMMANDS: dict[str, type[Command]] = {
    cls.subject: cls
    for module in _MODULES
    for name in module.__all__
    if isinstance(cls := getattr(module, name), type) and issubclass(cls, Command)
}


def command_class(subject_suffix: str) -> type[Command]:
    """Returns the command served on ``runlog.cmd.<subject_suffix>``, or raises ``KeyError``."""
    return COMMANDS[subject_suffix]
