"""The circuit breaker state machine, one per key (a provider, a model), shared by replicas.

Its state lives in the log, not in a process: every replica sees the same breaker,
and after the cooldown exactly one caller gets the half-open probe, because
concurrent ``BreakerHalfOpened`` appends race on the breaker's optimistic
concurrency check and the losers, deciding again, find it ``half_open``.

Operators force a breaker open (``breaker.force_open``, for a while or until
``breaker.force_close``). An open breaker's deadline only ever moves later: a new open
keeps the later of the old deadline and its own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from events.base import Command, DomainEvent
from events.catalog.breaker import (
    BreakerClosed,
    BreakerConfigured,
    BreakerFailureRecorded,
    BreakerForcedClosed,
    BreakerForcedOpen,
    BreakerHalfOpened,
    BreakerOpened,
    BreakerReset,
    BreakerSuccessRecorded,
)
from events.commands.breaker import (
    AcquireBreaker,
    ConfigureBreaker,
    ForceCloseBreaker,
    ForceOpenBreaker,
    RecordBreakerOutcome,
    ResetBreaker,
)
from events.errors import ErrorCode

from .context import Context
from .machine import DomainError, InvalidHistory, TransitionTable

__all__ = [
    "DEFAULT_COOLDOWN_S",
    "DEFAULT_FAILURE_THRESHOLD",
    "TABLE",
    "BreakerState",
    "acquire_allowed",
    "decide",
    "evolve",
    "health",
    "later",
]

DEFAULT_FAILURE_THRESHOLD = 5
DEFAULT_COOLDOWN_S = 30.0

_STATES = ("closed", "open", "half_open")

TABLE = TransitionTable(
    aggregate="breaker",
    states=_STATES,
    edges={
        (None, "BreakerConfigured"): "closed",
        **{(s, "BreakerConfigured"): s for s in _STATES},
        ("closed", "BreakerFailureRecorded"): "closed",
        ("closed", "BreakerSuccessRecorded"): "closed",
        ("closed", "BreakerOpened"): "open",
        ("half_open", "BreakerOpened"): "open",
        ("open", "BreakerHalfOpened"): "half_open",
        # A probe that never reports back must not hold the breaker half-open forever:
        # once its deadline passes, the next caller becomes the probe.
        ("half_open", "BreakerHalfOpened"): "half_open",
        ("half_open", "BreakerClosed"): "closed",
        **{(s, "BreakerReset"): "closed" for s in _STATES},
        (None, "BreakerForcedOpen"): "open",
        **{(s, "BreakerForcedOpen"): "open" for s in _STATES},
        **{(s, "BreakerForcedClosed"): "closed" for s in _STATES},
    },
)


@dataclass(frozen=True, slots=True)
class BreakerState:
    """A breaker's settings, failure count and, when not closed, its deadlines."""

    breaker_id: str
    state: str
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    cooldown_s: float = DEFAULT_COOLDOWN_S
    consecutive_failures: int = 0
    open_until: datetime | None = None
    probe_id: str | None = None
    probe_deadline: datetime | None = None
    forced: bool = False
    """Forced open by an operator; with no ``open_until`` it stays open until forced closed."""


def later(old: datetime | None, new: datetime | None, forced_forever: bool = False
          ) -> datetime | None:
    """The later of two open deadlines; None (open until forced closed) is the latest."""
    if forced_forever or new is None:
        return None
    return new if old is None else max(old, new)


def health(state: BreakerState | None, now: datetime) -> tuple[bool, str]:
    """Whether a call may go now (closed, or a probe is free) and why, for routing."""
    if state is None or state.state == "closed":
        return True, "breaker closed"
    if state.state == "open":
        if state.open_until is None:
            return False, "breaker forced open"
        if state.open_until <= now:
            return True, "breaker open past its cooldown: the probe is free"
        return False, f"breaker open until {state.open_until.isoformat()}"
    if state.probe_deadline is None or state.probe_deadline <= now:
        return True, "breaker half-open: the probe is free"
    return False, f"breaker half-open: a probe runs until {state.probe_deadline.isoformat()}"


def acquire_allowed(
    state_before: BreakerState | None, events: list[DomainEvent], ctx: Context
) -> bool:
    """The ``allowed`` of a ``breaker.acquire`` reply, from the state and what it decided.

    An unknown breaker counts as closed; an open or half-open one lets only the
    caller whose acquire wrote ``BreakerHalfOpened`` through.
    """
    if any(isinstance(event, BreakerHalfOpened) for event in events):
        return True
    return state_before is None or state_before.state == "closed"


def decide(state: BreakerState | None, command: Command, ctx: Context) -> list[DomainEvent]:
    """Returns the events a breaker command produces, or raises ``DomainError``.

    ``breaker.record`` on an unknown breaker creates it with the default settings
    first (a caller guarding a new provider should not need a setup step);
    ``breaker.acquire`` on one writes nothing and is allowed.
    """
    if isinstance(command, ConfigureBreaker):
        return _configure(state, command)
    if isinstance(command, RecordBreakerOutcome):
        return _record(state, command, ctx)
    if isinstance(command, AcquireBreaker):
        return [] if state is None else _acquire(state, command, ctx)
    if isinstance(command, ForceOpenBreaker):
        return [_force_open(state, command, ctx)]
    if state is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"breaker {command.target_id()} does not exist")
    if isinstance(command, ResetBreaker):
        return [BreakerReset(breaker_id=state.breaker_id)]
    if isinstance(command, ForceCloseBreaker):
        return [BreakerForcedClosed(breaker_id=state.breaker_id, reason=command.reason)]
    raise TypeError(f"not a breaker command: {type(command).__name__}")


def _configure(state: BreakerState | None, command: ConfigureBreaker) -> list[DomainEvent]:
    unchanged = state is not None and (state.failure_threshold, state.cooldown_s) == (
        command.failure_threshold, command.cooldown_s)
    if unchanged:
        return []
    return [BreakerConfigured(breaker_id=command.breaker_id,
                              failure_threshold=command.failure_threshold,
                              cooldown_s=command.cooldown_s)]


def _record(
    state: BreakerState | None, command: RecordBreakerOutcome, ctx: Context
) -> list[DomainEvent]:
    created: list[DomainEvent] = []
    if state is None:
        created = [BreakerConfigured(
            breaker_id=command.breaker_id,
            failure_threshold=command.failure_threshold or DEFAULT_FAILURE_THRESHOLD,
            cooldown_s=command.cooldown_s or DEFAULT_COOLDOWN_S)]
        state = evolve(None, created[0])
    if command.outcome == "success":
        return [*created, *_success(state)]
    return [*created, *_failure(state, command, ctx)]


def _success(state: BreakerState) -> list[DomainEvent]:
    if state.state == "half_open":
        return [BreakerClosed(breaker_id=state.breaker_id)]
    if state.state == "closed" and state.consecutive_failures:
        return [BreakerSuccessRecorded(breaker_id=state.breaker_id)]
    # Closed with no failures: nothing changes. Open: the call began before it opened.
    return []


def _failure(
    state: BreakerState, command: RecordBreakerOutcome, ctx: Context
) -> list[DomainEvent]:
    if state.state == "open":
        return []  # the call began before the breaker opened; it says nothing new
    failures = state.consecutive_failures + 1
    if state.state == "closed" and failures < state.failure_threshold:
        return [BreakerFailureRecorded(breaker_id=state.breaker_id,
                                       consecutive_failures=failures,
                                       error_class=command.error_class)]
    until = later(state.open_until, ctx.now + timedelta(seconds=state.cooldown_s))
    if until is None:
        return []  # forced open until an operator closes it: nothing to add
    return [BreakerOpened(breaker_id=state.breaker_id, until=until,
                          consecutive_failures=failures, error_class=command.error_class)]


def _force_open(state: BreakerState | None, command: ForceOpenBreaker, ctx: Context
                ) -> BreakerForcedOpen:
    new = ctx.now + timedelta(seconds=command.open_for_s) if command.open_for_s else None
    old = state.open_until if state is not None and state.state == "open" else None
    forever = state is not None and state.state == "open" and state.forced \
        and state.open_until is None
    return BreakerForcedOpen(breaker_id=command.breaker_id, reason=command.reason,
                             until=later(old, new, forever))


def _acquire(state: BreakerState, command: AcquireBreaker, ctx: Context) -> list[DomainEvent]:
    due = {"open": state.open_until, "half_open": state.probe_deadline}.get(state.state)
    if due is None or ctx.now < due:
        return []  # closed: allowed without a record; otherwise: not yet
    deadline = ctx.now + timedelta(seconds=state.cooldown_s)
    return [BreakerHalfOpened(breaker_id=state.breaker_id, probe_id=command.probe_id,
                              probe_deadline=deadline)]


def evolve(state: BreakerState | None, event: DomainEvent) -> BreakerState:
    """Returns the breaker's state after ``event`` (which must fit the table)."""
    target = TABLE.next_state(state.state if state else None, event.type_name())
    if state is None:
        if isinstance(event, BreakerForcedOpen):
            return BreakerState(breaker_id=event.breaker_id, state=target,
                                open_until=event.until, forced=True)
        if not isinstance(event, BreakerConfigured):
            raise InvalidHistory(f"breaker: {event.type_name()} before BreakerConfigured")
        return BreakerState(breaker_id=event.breaker_id, state=target,
                            failure_threshold=event.failure_threshold,
                            cooldown_s=event.cooldown_s)
    return _changed(replace(state, state=target), event)


def _changed(state: BreakerState, event: DomainEvent) -> BreakerState:
    """The fields an event changes besides the state name."""
    match event:
        case BreakerConfigured():
            return replace(state, failure_threshold=event.failure_threshold,
                           cooldown_s=event.cooldown_s)
        case BreakerFailureRecorded():
            return replace(state, consecutive_failures=event.consecutive_failures)
        case BreakerOpened():
            return replace(state, consecutive_failures=event.consecutive_failures,
                           open_until=event.until, probe_id=None, probe_deadline=None)
        case BreakerForcedOpen():
            return replace(state, open_until=event.until, probe_id=None, probe_deadline=None,
                           forced=True)
        case BreakerHalfOpened():
            return replace(state, probe_id=event.probe_id, probe_deadline=event.probe_deadline,
                           forced=False)
        case BreakerSuccessRecorded() | BreakerClosed() | BreakerReset() | BreakerForcedClosed():
            return replace(state, consecutive_failures=0, open_until=None, probe_id=None,
                           probe_deadline=None, forced=False)
    return state
