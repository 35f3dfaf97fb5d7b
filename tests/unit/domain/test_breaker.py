"""The circuit breaker: thresholds, cooldown, and a single half-open probe."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from events.commands.breaker import (
    AcquireBreaker,
    ConfigureBreaker,
    RecordBreakerOutcome,
    ResetBreaker,
)
from events.errors import ErrorCode
from services.domain import DomainError
from services.domain.breaker import BreakerState, acquire_allowed, decide

from .support import NOW, ctx, fold, play, types

CONFIGURE = ConfigureBreaker(breaker_id="b1", failure_threshold=3, cooldown_s=10)
FAIL = RecordBreakerOutcome(breaker_id="b1", outcome="failure", error_class="server_error")
OK = RecordBreakerOutcome(breaker_id="b1", outcome="success")
AFTER_COOLDOWN = NOW + timedelta(seconds=10)


def _acquire(state: BreakerState | None, at: Any = NOW, probe: str = "p1") -> tuple[
        list[Any], bool]:
    context = ctx(now=at)
    events = decide(state, AcquireBreaker(breaker_id="b1", probe_id=probe), context)
    return events, acquire_allowed(state, events, context)


def _open() -> BreakerState:
    state: BreakerState = play("breaker", [CONFIGURE, FAIL, FAIL, FAIL])
    return state


def _half_open() -> BreakerState:
    state = _open()
    events, _ = _acquire(state, AFTER_COOLDOWN)
    half_open: BreakerState = fold("breaker", events, state)
    return half_open


def test_configure_creates_closed() -> None:
    state = play("breaker", [CONFIGURE])
    assert (state.state, state.failure_threshold, state.cooldown_s) == ("closed", 3, 10.0)


def test_configure_again_updates_or_is_a_no_op() -> None:
    state = play("breaker", [CONFIGURE])
    assert decide(state, CONFIGURE, ctx()) == []
    changed = CONFIGURE.model_copy(update={"failure_threshold": 7})
    assert play("breaker", [changed], state=state).failure_threshold == 7


def test_failures_below_the_threshold_are_counted() -> None:
    state = play("breaker", [CONFIGURE, FAIL, FAIL])
    assert (state.state, state.consecutive_failures) == ("closed", 2)


def test_a_success_clears_the_count() -> None:
    state = play("breaker", [CONFIGURE, FAIL, FAIL, OK, FAIL, FAIL])
    assert (state.state, state.consecutive_failures) == ("closed", 2)
    assert decide(play("breaker", [CONFIGURE]), OK, ctx()) == []


def test_threshold_opens_until_the_cooldown_ends() -> None:
    state = _open()
    assert (state.state, state.open_until) == ("open", AFTER_COOLDOWN)


def test_outcomes_while_open_are_ignored() -> None:
    assert decide(_open(), FAIL, ctx()) == []
    assert decide(_open(), OK, ctx()) == []


def test_record_on_an_unknown_breaker_creates_it() -> None:
    events = decide(None, FAIL, ctx())
    assert types(events) == ["BreakerConfigured", "BreakerFailureRecorded"]
    state = fold("breaker", events)
    assert (state.failure_threshold, state.cooldown_s, state.consecutive_failures) == (
        5, 30.0, 1)
    assert types(decide(None, OK, ctx())) == ["BreakerConfigured"]


def test_acquire_closed_or_unknown_is_allowed_without_events() -> None:
    assert _acquire(None) == ([], True)
    assert _acquire(play("breaker", [CONFIGURE])) == ([], True)


def test_acquire_open_within_the_cooldown_is_refused() -> None:
    assert _acquire(_open(), AFTER_COOLDOWN - timedelta(microseconds=1)) == ([], False)


def test_after_the_cooldown_exactly_one_probe_wins() -> None:
    state = _open()
    first, first_allowed = _acquire(state, AFTER_COOLDOWN, "p1")
    racing, _ = _acquire(state, AFTER_COOLDOWN, "p2")
    assert types(first) == types(racing) == ["BreakerHalfOpened"]
    assert first_allowed
    # The racer's append fails the concurrency check; it decides again on the new state.
    appended = fold("breaker", first, state)
    assert (appended.state, appended.probe_id) == ("half_open", "p1")
    assert _acquire(appended, AFTER_COOLDOWN, "p2") == ([], False)
    assert _acquire(appended, AFTER_COOLDOWN + timedelta(seconds=9), "p3") == ([], False)


def test_a_silent_probe_is_replaced_after_its_deadline() -> None:
    state = _half_open()
    events, allowed = _acquire(state, AFTER_COOLDOWN + timedelta(seconds=10), "p2")
    assert (types(events), allowed) == (["BreakerHalfOpened"], True)
    assert fold("breaker", events, state).probe_id == "p2"


def test_half_open_success_closes() -> None:
    state = play("breaker", [OK], state=_half_open())
    assert (state.state, state.consecutive_failures, state.probe_id) == ("closed", 0, None)


def test_half_open_failure_opens_again() -> None:
    later = AFTER_COOLDOWN + timedelta(seconds=1)
    state = play("breaker", [FAIL], ctx(now=later), _half_open())
    assert (state.state, state.open_until) == ("open", later + timedelta(seconds=10))


@pytest.mark.parametrize("breaker", [_open, _half_open])
def test_reset_closes(breaker: Any) -> None:
    state = play("breaker", [ResetBreaker(breaker_id="b1")], state=breaker())
    assert (state.state, state.consecutive_failures) == ("closed", 0)


def test_reset_an_unknown_breaker() -> None:
    with pytest.raises(DomainError) as refused:
        decide(None, ResetBreaker(breaker_id="b1"), ctx())
    assert refused.value.code == ErrorCode.NOT_FOUND
