"""One ordered shutdown sequence: each step has a name and a deadline, and none can block it.

A step that fails or overruns is logged by name with what went wrong, and the next
step still runs: a stop under load must reach "NATS closed" whatever hangs before it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum

__all__ = ["Phase", "ShutdownPlan", "StopStep", "cancel_within", "describe_error",
           "run_shutdown"]

log = logging.getLogger(__name__)

_RECANCEL_EVERY_S = 0.1
_ABANDON_S = 0.5


@dataclass(frozen=True, slots=True)
class StopStep:
    """One thing to stop, in the order of the sequence."""

    name: str
    """What the logs call it, e.g. "command intake"."""
    stop: Callable[[], Awaitable[object]]
    deadline_s: float
    """How long the step may take before the sequence goes on without it."""


def describe_error(error: BaseException) -> str:
    """The error's type and message, never an empty string (``TimeoutError()`` has none)."""
    text = str(error)
    if isinstance(error, BaseExceptionGroup):
        text = "; ".join(describe_error(inner) for inner in error.exceptions)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def run_shutdown(steps: Iterable[StopStep]) -> None:
    """Runs every step in order, each under its deadline; failures are logged, never raised."""
    for step in steps:
        started = time.monotonic()
        # Its own task: a step that swallows a cancellation cannot hold the sequence.
        running = asyncio.create_task(_run(step.stop), name=f"shutdown: {step.name}")
        done, _ = await asyncio.wait({running}, timeout=step.deadline_s)
        if not done:
            log.warning("shutdown: %s did not finish within %.1f s; going on without it",
                        step.name, step.deadline_s)
            await cancel_within([running], _ABANDON_S)
        elif running.cancelled():
            log.warning("shutdown: %s was cancelled", step.name)
        elif (error := running.exception()) is not None:
            log.warning("shutdown: %s failed: %s", step.name, describe_error(error))
        else:
            log.debug("shutdown: %s done in %.3f s", step.name, time.monotonic() - started)


async def _run(stop: Callable[[], Awaitable[object]]) -> None:
    await stop()


async def cancel_within(tasks: Iterable[asyncio.Task[object]], deadline_s: float) -> None:
    """Cancels ``tasks`` and waits for them, re-cancelling any that catches a cancellation.

    A task whose ``finally`` awaits something that never comes (a NATS call on a dead
    connection) would block a single cancel forever; every further cancel interrupts that
    await. Tasks still running at the deadline are named in the log and left behind.
    """
    tasks = list(tasks)
    for task in tasks:
        if task.done() and not task.cancelled() and (error := task.exception()) is not None:
            log.warning("shutdown: task %s had already stopped: %s", task.get_name(),
                        describe_error(error))
    pending = {task for task in tasks if not task.done()}
    deadline = time.monotonic() + deadline_s
    while pending and (remaining := deadline - time.monotonic()) > 0:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(_RECANCEL_EVERY_S, remaining))
    for task in pending:
        log.warning("shutdown: task %s still running after %.1f s of cancelling",
                    task.get_name(), deadline_s)


class Phase(IntEnum):
    """The stages of a stop, in their order."""

    INTAKE = 1
    """Stop taking new work: the instance file, command subscriptions, listeners."""
    IN_FLIGHT = 2
    """Finish and answer the work already taken."""
    WORKERS = 3
    """Stop what works on its own: policies, the command service, projectors."""
    CONNECTIONS = 4
    """Close the NATS connections (an embedded nats-server stops after them)."""


class ShutdownPlan:
    """Stop steps collected as things start, run by phase; within a phase, last started first."""

    def __init__(self) -> None:
        self._steps: list[tuple[Phase, int, StopStep]] = []

    def add(self, phase: Phase, name: str, stop: Callable[[], Awaitable[object]],
            deadline_s: float) -> None:
        """Registers what stops ``name`` and how long it may take."""
        self._steps.append((phase, -len(self._steps), StopStep(name, stop, deadline_s)))

    def steps(self) -> list[StopStep]:
        """The steps in the order they run."""
        return [step for _, _, step in sorted(self._steps, key=lambda entry: entry[:2])]

    async def run(self) -> None:
        """Runs every step (see ``run_shutdown``)."""
        await run_shutdown(self.steps())
