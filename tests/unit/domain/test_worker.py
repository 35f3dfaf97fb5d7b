"""The worker machine: registration, liveness, slots."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from events.commands.worker import (
    DeregisterWorker,
    DrainWorker,
    HeartbeatWorker,
    MarkWorkerLost,
    RegisterWorker,
)
from events.errors import ErrorCode
from services.domain import DomainError
from services.domain.worker import WorkerState, assign, decide, release

from .support import LATER, NOW, ctx, fold, play, types

REGISTER = RegisterWorker(worker_id="w1", kinds=["llm.chat"], capacity=2)


def _idle() -> WorkerState:
    state: WorkerState = play("worker", [REGISTER])
    return state


def _holding(*task_ids: str) -> WorkerState:
    state = _idle()
    for task_id in task_ids:
        state = fold("worker", assign(state, task_id, ctx()), state)
    return state


def _refused(call: Any, *args: Any) -> DomainError:
    with pytest.raises(DomainError) as refused:
        call(*args)
    return refused.value


def test_register() -> None:
    state = _idle()
    assert (state.state, state.capacity, state.kinds, state.last_heartbeat_at) == (
        "idle", 2, ("llm.chat",), NOW)
    assert state.serves("llm.chat")
    assert not state.serves("tool")
    assert replace(state, kinds=()).serves("anything")


def test_register_a_live_worker_again() -> None:
    refused = _refused(decide, _idle(), REGISTER, ctx())
    assert refused.code == ErrorCode.ALREADY_EXISTS


@pytest.mark.parametrize("gone", ["offline", "lost"])
def test_register_again_after_leaving(gone: str) -> None:
    state = replace(_idle(), state=gone)
    changed = REGISTER.model_copy(update={"capacity": 5})
    after = play("worker", [changed], state=state)
    assert (after.state, after.capacity) == ("idle", 5)


def test_unknown_worker() -> None:
    refused = _refused(decide, None, HeartbeatWorker(worker_id="w9"), ctx())
    assert (refused.code, refused.message) == (ErrorCode.NOT_FOUND, "worker w9 does not exist")
    assert _refused(assign, None, "t1", ctx()).code == ErrorCode.NOT_FOUND
    assert _refused(release, None, "t1", ctx()).code == ErrorCode.NOT_FOUND


def test_heartbeat_records_the_time() -> None:
    after = play("worker", [HeartbeatWorker(worker_id="w1")], ctx(now=LATER), _holding("t1"))
    assert (after.state, after.last_heartbeat_at) == ("busy", LATER)


def test_heartbeat_brings_a_lost_worker_back() -> None:
    lost = play("worker", [MarkWorkerLost(worker_id="w1")], state=_holding("t1"))
    assert (lost.state, lost.tasks) == ("lost", frozenset())
    assert play("worker", [HeartbeatWorker(worker_id="w1")], state=lost).state == "idle"


def test_heartbeat_of_an_offline_worker() -> None:
    refused = _refused(decide, replace(_idle(), state="offline"),
                       HeartbeatWorker(worker_id="w1"), ctx())
    assert refused.code == ErrorCode.INVALID_TRANSITION
    assert refused.message == "worker w1 is offline; heartbeat needs idle/busy/draining/lost"


def test_mark_lost_names_the_held_tasks() -> None:
    (event,) = decide(_holding("t2", "t1"), MarkWorkerLost(worker_id="w1"), ctx())
    assert event.task_ids == ["t1", "t2"]  # type: ignore[attr-defined]
    lost = fold("worker", [event], _holding("t1"))
    assert _refused(decide, lost, MarkWorkerLost(worker_id="w1"), ctx()).code == \
        ErrorCode.INVALID_TRANSITION


def test_assign_up_to_capacity() -> None:
    one = _holding("t1")
    assert (one.state, one.free_slots) == ("busy", 1)
    two = _holding("t1", "t2")
    assert two.free_slots == 0
    refused = _refused(assign, two, "t3", ctx())
    assert refused.code == ErrorCode.INVALID_TRANSITION
    assert refused.message == "worker w1 is at capacity (2 of 2)"


def test_assign_the_same_task_twice() -> None:
    assert _refused(assign, _holding("t1"), "t1", ctx()).code == ErrorCode.INVALID_TRANSITION


@pytest.mark.parametrize("state", ["draining", "lost", "offline"])
def test_assign_refused_when_not_taking_work(state: str) -> None:
    refused = _refused(assign, replace(_idle(), state=state), "t1", ctx())
    assert refused.code == ErrorCode.INVALID_TRANSITION
    assert refused.message == f"worker w1 is {state}; assign needs idle/busy"


def test_release_back_to_idle() -> None:
    state = _holding("t1", "t2")
    assert types(release(state, "t1", ctx())) == ["WorkerTaskReleased"]
    one = fold("worker", release(state, "t1", ctx()), state)
    events = release(one, "t2", ctx())
    assert types(events) == ["WorkerTaskReleased", "WorkerBecameIdle"]
    assert fold("worker", events, one).state == "idle"


def test_release_of_a_task_not_held_writes_nothing() -> None:
    assert release(_holding("t1"), "t9", ctx()) == []


def test_drain_then_offline_on_the_last_release() -> None:
    draining = play("worker", [DrainWorker(worker_id="w1")], state=_holding("t1"))
    assert draining.state == "draining"
    assert _refused(assign, draining, "t2", ctx()).code == ErrorCode.INVALID_TRANSITION
    events = release(draining, "t1", ctx())
    assert types(events) == ["WorkerTaskReleased", "WorkerDeregistered"]
    assert fold("worker", events, draining).state == "offline"


def test_drain_an_idle_worker_goes_offline() -> None:
    events = decide(_idle(), DrainWorker(worker_id="w1"), ctx())
    assert types(events) == ["WorkerDraining", "WorkerDeregistered"]
    draining = replace(_holding("t1"), state="draining")
    assert decide(draining, DrainWorker(worker_id="w1"), ctx()) == []


def test_deregister() -> None:
    assert types(decide(_idle(), DeregisterWorker(worker_id="w1"), ctx())) == [
        "WorkerDeregistered"]
    assert types(decide(_holding("t1"), DeregisterWorker(worker_id="w1"), ctx())) == [
        "WorkerDraining"]
    draining = replace(_holding("t1"), state="draining")
    assert decide(draining, DeregisterWorker(worker_id="w1"), ctx()) == []
    offline = replace(_idle(), state="offline")
    assert _refused(decide, offline, DeregisterWorker(worker_id="w1"), ctx()).code == \
        ErrorCode.INVALID_TRANSITION
