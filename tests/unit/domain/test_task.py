"""The task machine: submission rules, leases and epochs, retries and backoff."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from events.catalog.task import ERROR_CLASSES, TaskBlocked, TaskLeased, TaskRetryScheduled
from events.commands.task import (
    BlockTask,
    CancelTask,
    ClaimTask,
    DeferTask,
    ExpireTaskLease,
    FailTask,
    HeartbeatTask,
    StartTask,
    SubmitTask,
    SucceedTask,
    UnblockTask,
)
from events.errors import ErrorCode
from services.domain import DomainError
from services.domain.budget import BudgetState
from services.domain.context import Facts
from services.domain.task import (
    BACKOFF_CAP_S,
    RETRYABLE,
    TaskState,
    backoff_s,
    decide,
    expire_lease,
    is_claimable,
    lease,
)
from services.domain.workstream import WorkstreamState

from .support import LATER, NOW, ctx, fold, running_run, types

SUBMIT = SubmitTask(task_id="t1", run_id="r1", kind="llm.chat")
TTL = 30.0


def _refused(state: TaskState | None, command: Any, related: Any = None) -> DomainError:
    with pytest.raises(DomainError) as refused:
        decide(state, command, ctx(related=related))
    return refused.value


def _submitted(command: SubmitTask = SUBMIT) -> TaskState:
    state: TaskState = fold("task", decide(None, command, ctx(related=running_run())))
    return state


def _leased(state: TaskState | None = None, worker: str = "w1") -> TaskState:
    state = state or _submitted()
    leased: TaskState = fold("task", [lease(state, worker, ctx(), TTL)], state)
    return leased


def _running() -> TaskState:
    state = _leased()
    start = StartTask(task_id="t1", worker_id="w1", lease_epoch=1)
    running: TaskState = fold("task", decide(state, start, ctx()), state)
    return running


def _fail(state: TaskState, error_class: str = "timeout", epoch: int | None = None) -> list[Any]:
    command = FailTask(task_id="t1", worker_id="w1", lease_epoch=epoch or state.lease_epoch,
                       error_class=error_class, message="boom")  # type: ignore[arg-type]
    return decide(state, command, ctx())


# -- submit -----------------------------------------------------------------------------


def test_submit_queues_the_task() -> None:
    state = _submitted()
    assert (state.state, state.priority, state.max_attempts, state.attempts) == (
        "queued", 5, 3, 0)
    assert state.submitted_at == NOW


def test_submit_needs_the_run() -> None:
    refused = _refused(None, SUBMIT)
    assert (refused.code, refused.message) == (ErrorCode.NOT_FOUND, "run r1 does not exist")


def test_submit_needs_a_running_run() -> None:
    refused = _refused(None, SUBMIT, running_run(state="pending"))
    assert refused.code == ErrorCode.INVALID_TRANSITION
    assert refused.message == "run r1 is pending; task.submit needs running"


def test_submit_to_an_over_budget_run() -> None:
    refused = _refused(None, SUBMIT, running_run(over_budget=True))
    assert refused.code == ErrorCode.BUDGET_EXCEEDED


def test_submit_checks_the_shared_budget() -> None:
    run = running_run(budget_id="team")
    budget = BudgetState(budget_id="team", name="team", state="active", max_tokens=10)
    assert _refused(None, SUBMIT, run).code == ErrorCode.NOT_FOUND
    spent = Facts(run=run, budget=replace(budget, tokens=10))
    assert _refused(None, SUBMIT, spent).code == ErrorCode.BUDGET_EXCEEDED
    closed = Facts(run=run, budget=replace(budget, state="closed"))
    assert _refused(None, SUBMIT, closed).code == ErrorCode.BUDGET_EXCEEDED
    events = decide(None, SUBMIT, ctx(related=Facts(run=run, budget=budget)))
    assert types(events) == ["TaskSubmitted"]


def test_submit_twice() -> None:
    assert _refused(_submitted(), SUBMIT, running_run()).code == ErrorCode.ALREADY_EXISTS


def test_submit_with_dependencies_waits_blocked() -> None:
    command = SUBMIT.model_copy(update={"depends_on": ["t0"]})
    events = decide(None, command, ctx(related=running_run()))
    assert types(events) == ["TaskSubmitted"]
    assert fold("task", events).state == "blocked"


def test_older_logs_submit_then_block_in_two_events() -> None:
    submitted = decide(None, SUBMIT, ctx(related=running_run()))
    assert fold("task", [*submitted, TaskBlocked(task_id="t1")]).state == "blocked"


def test_submit_cannot_depend_on_itself() -> None:
    command = SUBMIT.model_copy(update={"depends_on": ["t1"]})
    assert _refused(None, command, running_run()).code == ErrorCode.VALIDATION_FAILED


def _workstream(state: str, run_id: str = "r1") -> WorkstreamState:
    return WorkstreamState(workstream_id="ws1", run_id=run_id, name="w", state=state)


@pytest.mark.parametrize(("workstream", "code"), [
    (None, ErrorCode.NOT_FOUND),
    (_workstream("running", run_id="r2"), ErrorCode.VALIDATION_FAILED),
    (_workstream("succeeded"), ErrorCode.INVALID_TRANSITION),
])
def test_submit_to_a_workstream_refused(workstream: WorkstreamState | None,
                                        code: ErrorCode) -> None:
    command = SUBMIT.model_copy(update={"workstream_id": "ws1"})
    facts = Facts(run=running_run(), workstream=workstream)
    assert _refused(None, command, facts).code == code


@pytest.mark.parametrize(("workstream_state", "expected"), [
    ("running", "queued"), ("pending", "pending"), ("paused", "pending"),
])
def test_submit_to_a_workstream(workstream_state: str, expected: str) -> None:
    command = SUBMIT.model_copy(update={"workstream_id": "ws1"})
    facts = Facts(run=running_run(), workstream=_workstream(workstream_state))
    assert fold("task", decide(None, command, ctx(related=facts))).state == expected


# -- claim and lease --------------------------------------------------------------------


def test_claim_is_not_decided() -> None:
    with pytest.raises(TypeError):
        decide(_submitted(), ClaimTask(worker_id="w1"), ctx())


def test_lease_grants_the_next_epoch() -> None:
    leased = lease(_submitted(), "w1", ctx(), TTL)
    assert isinstance(leased, TaskLeased)
    assert (leased.lease_epoch, leased.attempt) == (1, 1)
    assert leased.lease_expires_at == NOW + timedelta(seconds=TTL)
    state = fold("task", [leased], _submitted())
    assert (state.state, state.worker_id, state.attempts) == ("leased", "w1", 1)


def test_lease_refused_unless_claimable() -> None:
    with pytest.raises(DomainError) as refused:
        lease(_running(), "w2", ctx(), TTL)
    assert refused.value.code == ErrorCode.INVALID_TRANSITION
    assert refused.value.message == "task t1 is running; lease needs queued/retry_wait"


def test_lease_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        lease(_submitted(), "w1", ctx(), 0)


def test_retry_wait_leases_only_once_due() -> None:
    waiting = fold("task", _fail(_running()), _running())
    assert waiting.state == "retry_wait"
    assert waiting.retry_at is not None
    with pytest.raises(DomainError) as early:
        lease(waiting, "w2", ctx(now=waiting.retry_at - timedelta(microseconds=1)), TTL)
    assert early.value.code == ErrorCode.INVALID_TRANSITION
    again = fold("task", [lease(waiting, "w2", ctx(now=waiting.retry_at), TTL)], waiting)
    assert (again.state, again.worker_id, again.lease_epoch, again.attempts) == (
        "leased", "w2", 2, 2)


def test_is_claimable() -> None:
    queued = _submitted()
    assert is_claimable(queued, [], NOW)
    assert is_claimable(queued, ["llm.chat", "tool"], NOW)
    assert not is_claimable(queued, ["tool"], NOW)
    assert not is_claimable(_leased(), [], NOW)
    waiting = replace(queued, state="retry_wait", retry_at=LATER)
    assert not is_claimable(waiting, [], NOW)
    assert is_claimable(waiting, [], LATER)


# -- the holder's commands --------------------------------------------------------------


@pytest.mark.parametrize("command", [
    StartTask(task_id="t1", worker_id="w2", lease_epoch=1),
    StartTask(task_id="t1", worker_id="w1", lease_epoch=2),
    HeartbeatTask(task_id="t1", worker_id="w2", lease_epoch=1),
    SucceedTask(task_id="t1", worker_id="w1", lease_epoch=7),
    FailTask(task_id="t1", worker_id="w2", lease_epoch=1, error_class="timeout"),
])
def test_only_the_holder_may_act(command: Any) -> None:
    assert _refused(_leased(), command).code == ErrorCode.LEASE_MISMATCH


def test_a_task_never_leased_has_no_holder() -> None:
    command = StartTask(task_id="t1", worker_id="w1", lease_epoch=1)
    assert _refused(_submitted(), command).code == ErrorCode.LEASE_MISMATCH


def test_start_twice() -> None:
    refused = _refused(_running(), StartTask(task_id="t1", worker_id="w1", lease_epoch=1))
    assert refused.code == ErrorCode.INVALID_TRANSITION
    assert refused.message == "task t1 is running; start needs leased"


def test_heartbeat_extends_the_lease() -> None:
    state = _running()
    beat = HeartbeatTask(task_id="t1", worker_id="w1", lease_epoch=1)
    later = NOW + timedelta(seconds=20)
    events = decide(state, beat, ctx(now=later))
    assert types(events) == ["TaskHeartbeatReceived"]
    after = fold("task", events, state)
    assert (after.state, after.lease_expires_at) == ("running", later + timedelta(seconds=TTL))


def test_heartbeat_never_shrinks_the_lease() -> None:
    state = _running()
    beat = HeartbeatTask(task_id="t1", worker_id="w1", lease_epoch=1)
    after = fold("task", decide(state, beat, ctx(now=NOW - timedelta(seconds=5))), state)
    assert after.lease_expires_at == state.lease_expires_at


@pytest.mark.parametrize("holder", [_leased, _running])
def test_succeed_from_leased_or_running(holder: Any) -> None:
    command = SucceedTask(task_id="t1", worker_id="w1", lease_epoch=1, result={"ok": True})
    events = decide(holder(), command, ctx())
    assert types(events) == ["TaskSucceeded"]
    assert fold("task", events, holder()).state == "succeeded"


def test_succeed_twice() -> None:
    command = SucceedTask(task_id="t1", worker_id="w1", lease_epoch=1)
    done = fold("task", decide(_running(), command, ctx()), _running())
    refused = _refused(done, command)
    assert refused.code == ErrorCode.INVALID_TRANSITION
    assert refused.message == "task t1 is succeeded; succeed needs leased/running"


# -- failures, retries, backoff ---------------------------------------------------------


@pytest.mark.parametrize("error_class", sorted(set(ERROR_CLASSES) - {"lease_expired"}))
def test_fail_retries_only_transient_errors(error_class: str) -> None:
    events = _fail(_running(), error_class)
    expected = "TaskRetryScheduled" if error_class in RETRYABLE else "TaskFailed"
    assert types(events) == [expected]


def test_retry_is_scheduled_with_the_backoff() -> None:
    (event,) = _fail(_running())
    assert isinstance(event, TaskRetryScheduled)
    assert (event.attempt, event.error_class, event.message) == (1, "timeout", "boom")
    assert event.retry_at == NOW + timedelta(seconds=backoff_s("t1", 1))


def test_last_attempt_fails_for_good() -> None:
    state = replace(_running(), attempts=3)
    assert types(_fail(state)) == ["TaskFailed"]
    assert fold("task", _fail(state), state).last_error_class == "timeout"


def test_max_attempts_one_never_retries() -> None:
    state = _running()
    assert types(_fail(replace(state, max_attempts=1), "rate_limit")) == ["TaskFailed"]


def test_fail_outside_a_lease() -> None:
    state = fold("task", _fail(_running()), _running())
    refused = _refused(state, FailTask(task_id="t1", worker_id="w1", lease_epoch=1,
                                       error_class="timeout"))
    assert refused.code == ErrorCode.INVALID_TRANSITION


def test_backoff_is_deterministic_and_bounded() -> None:
    for attempt in range(1, 30):
        delay = backoff_s("t1", attempt)
        assert delay == backoff_s("t1", attempt)
        assert 0 <= delay < min(BACKOFF_CAP_S, 2 ** (attempt - 1))
    assert backoff_s("t1", 3) != backoff_s("t2", 3)


def test_backoff_jitter_spreads_over_the_window() -> None:
    delays = [backoff_s(f"t{i}", 12) for i in range(2000)]
    assert max(delays) < BACKOFF_CAP_S
    assert 0.45 < sum(delays) / len(delays) / BACKOFF_CAP_S < 0.55
    assert min(delays) < 0.05 * BACKOFF_CAP_S < 0.95 * BACKOFF_CAP_S < max(delays)


# -- lease expiry -----------------------------------------------------------------------


def _lapsed() -> Any:
    return ctx(now=NOW + timedelta(seconds=TTL + 1))


@pytest.mark.parametrize("holder", [_leased, _running])
def test_expired_lease_retries(holder: Any) -> None:
    events = expire_lease(holder(), _lapsed())
    assert types(events) == ["TaskRetryScheduled"]
    assert isinstance(events[0], TaskRetryScheduled)
    assert (events[0].error_class, events[0].lease_epoch) == ("lease_expired", 1)
    after = fold("task", events, holder())
    assert (after.state, after.lease_epoch) == ("retry_wait", 2)


def test_expired_lease_voids_the_old_holder() -> None:
    after = fold("task", expire_lease(_running(), _lapsed()), _running())
    late = SucceedTask(task_id="t1", worker_id="w1", lease_epoch=1)
    assert _refused(after, late).code == ErrorCode.LEASE_MISMATCH
    released = fold("task", [lease(after, "w2", ctx(now=LATER), TTL)], after)
    assert (released.worker_id, released.lease_epoch) == ("w2", 3)
    assert _refused(released, late).code == ErrorCode.LEASE_MISMATCH


def test_expired_lease_on_the_last_attempt_fails() -> None:
    state = replace(_running(), max_attempts=1)
    events = expire_lease(state, _lapsed())
    assert types(events) == ["TaskFailed"]
    assert fold("task", events, state).state == "failed"


def test_a_lease_still_running_does_not_expire() -> None:
    with pytest.raises(DomainError) as refused:
        expire_lease(_running(), ctx(now=NOW + timedelta(seconds=TTL)))
    assert refused.value.code == ErrorCode.INVALID_TRANSITION


def test_expire_lease_command_checks_the_epoch() -> None:
    stale = ExpireTaskLease(task_id="t1", lease_epoch=2)
    with pytest.raises(DomainError) as refused:
        decide(_running(), stale, _lapsed())
    assert refused.value.code == ErrorCode.LEASE_MISMATCH
    current = ExpireTaskLease(task_id="t1", lease_epoch=1)
    assert types(decide(_running(), current, _lapsed())) == ["TaskRetryScheduled"]
    with pytest.raises(DomainError) as unheld:
        decide(_submitted(), ExpireTaskLease(task_id="t1", lease_epoch=1), _lapsed())
    assert unheld.value.code == ErrorCode.LEASE_MISMATCH


def test_expire_lease_of_an_unheld_task() -> None:
    with pytest.raises(DomainError) as refused:
        expire_lease(_submitted(), _lapsed())
    assert refused.value.code == ErrorCode.INVALID_TRANSITION


# -- waiting states, cancel -------------------------------------------------------------


def test_unknown_task() -> None:
    refused = _refused(None, CancelTask(task_id="t9"))
    assert (refused.code, refused.message) == (ErrorCode.NOT_FOUND, "task t9 does not exist")


def test_cancel_a_held_task_names_its_holder() -> None:
    (event,) = decide(_running(), CancelTask(task_id="t1", reason="stop"), ctx())
    assert event.worker_id == "w1"  # type: ignore[attr-defined]
    (queued,) = decide(_submitted(), CancelTask(task_id="t1"), ctx())
    assert queued.worker_id is None  # type: ignore[attr-defined]


def test_cancel_a_finished_task() -> None:
    done = replace(_running(), state="failed")
    assert _refused(done, CancelTask(task_id="t1")).code == ErrorCode.INVALID_TRANSITION


def test_block_unblock_defer_queue() -> None:
    state = _submitted()
    for command, expected in [(BlockTask(task_id="t1", reason="review"), "blocked"),
                              (UnblockTask(task_id="t1"), "queued"),
                              (DeferTask(task_id="t1", not_before=LATER), "queued")]:
        state = fold("task", decide(state, command, ctx()), state)
        assert state.state == expected


def test_unblock_needs_dependencies_succeeded() -> None:
    command = SUBMIT.model_copy(update={"depends_on": ["t0"]})
    blocked = fold("task", decide(None, command, ctx(related=running_run())))
    unblock = UnblockTask(task_id="t1")
    assert _refused(blocked, unblock).code == ErrorCode.NOT_FOUND
    dependency = replace(_submitted(), task_id="t0")
    assert _refused(blocked, unblock, {"t0": dependency}).code == ErrorCode.INVALID_TRANSITION
    done = {"t0": replace(dependency, state="succeeded")}
    assert types(decide(blocked, unblock, ctx(related=done))) == ["TaskUnblocked"]
