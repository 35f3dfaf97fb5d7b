"""The worker machine: registration, liveness, draining; room for one more task."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from events.catalog.worker import (
    WorkerBecameIdle,
    WorkerLost,
    WorkerTaskAssigned,
    WorkerTaskReleased,
)
from events.commands.worker import (
    DeregisterWorker,
    DrainWorker,
    HeartbeatWorker,
    MarkWorkerLost,
    RegisterWorker,
)
from events.errors import ErrorCode
from services.domain import DomainError
from services.domain.worker import WorkerState, decide, require_room

from .support import LATER, NOW, ctx, fold, play, types

REGISTER = RegisterWorker(worker_id="w1", kinds=["llm.chat"], capacity=2)


def _idle() -> WorkerState:
    state: WorkerState = play("worker", [REGISTER])
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


def test_heartbeat_records_the_time() -> None:
    after = play("worker", [HeartbeatWorker(worker_id="w1")], ctx(now=LATER), _idle())
    assert (after.state, after.last_heartbeat_at) == ("idle", LATER)


def test_heartbeat_brings_a_lost_worker_back() -> None:
    lost = play("worker", [MarkWorkerLost(worker_id="w1")], ctx(held=["t1"]), _idle())
    assert lost.state == "lost"
    assert play("worker", [HeartbeatWorker(worker_id="w1")], state=lost).state == "idle"


def test_heartbeat_of_an_offline_worker() -> None:
    refused = _refused(decide, replace(_idle(), state="offline"),
                       HeartbeatWorker(worker_id="w1"), ctx())
    assert refused.code == ErrorCode.INVALID_TRANSITION
    assert refused.message == "worker w1 is offline; heartbeat needs idle/busy/draining/lost"


def test_mark_lost_names_the_held_tasks() -> None:
    (event,) = decide(_idle(), MarkWorkerLost(worker_id="w1"), ctx(held=["t2", "t1"]))
    assert isinstance(event, WorkerLost)
    assert event.task_ids == ["t1", "t2"]
    lost = fold("worker", [event], _idle())
    assert _refused(decide, lost, MarkWorkerLost(worker_id="w1"), ctx()).code == \
        ErrorCode.INVALID_TRANSITION


def test_room_up_to_capacity() -> None:
    state = _idle()
    assert (state.free_slots(0), state.free_slots(1), state.free_slots(2)) == (2, 1, 0)
    require_room(state, 1)
    refused = _refused(require_room, state, 2)
    assert refused.code == ErrorCode.INVALID_TRANSITION
    assert refused.message == "worker w1 is at capacity (2 of 2)"


@pytest.mark.parametrize("state", ["draining", "lost", "offline"])
def test_no_room_when_not_taking_work(state: str) -> None:
    stopped = replace(_idle(), state=state)
    assert stopped.free_slots(0) == 0
    refused = _refused(require_room, stopped, 0)
    assert refused.code == ErrorCode.INVALID_TRANSITION
    assert refused.message == f"worker w1 is {state}; assign needs idle/busy"


def test_drain_a_worker_holding_tasks() -> None:
    draining = play("worker", [DrainWorker(worker_id="w1")], ctx(held=["t1"]), _idle())
    assert draining.state == "draining"
    assert _refused(require_room, draining, 0).code == ErrorCode.INVALID_TRANSITION
    assert decide(draining, DrainWorker(worker_id="w1"), ctx(held=["t1"])) == []


def test_drain_an_idle_worker_goes_offline() -> None:
    events = decide(_idle(), DrainWorker(worker_id="w1"), ctx())
    assert types(events) == ["WorkerDeregistered"]
    assert fold("worker", events, _idle()).state == "offline"


def test_deregister() -> None:
    assert types(decide(_idle(), DeregisterWorker(worker_id="w1"), ctx())) == [
        "WorkerDeregistered"]
    assert types(decide(_idle(), DeregisterWorker(worker_id="w1"), ctx(held=["t1"]))) == [
        "WorkerDraining"]
    draining = replace(_idle(), state="draining")
    assert decide(draining, DeregisterWorker(worker_id="w1"), ctx(held=["t1"])) == []
    # Once its last lease ended, the drain policy deregisters it.
    assert types(decide(draining, DeregisterWorker(worker_id="w1"), ctx())) == [
        "WorkerDeregistered"]
    offline = replace(_idle(), state="offline")
    assert _refused(decide, offline, DeregisterWorker(worker_id="w1"), ctx()).code == \
        ErrorCode.INVALID_TRANSITION


def test_logs_of_older_versions_still_fold() -> None:
    assigned = WorkerTaskAssigned(worker_id="w1", task_id="t1")
    busy = fold("worker", [assigned], _idle())
    assert busy.state == "busy"
    released = [WorkerTaskReleased(worker_id="w1", task_id="t1"),
                WorkerBecameIdle(worker_id="w1")]
    assert fold("worker", released, busy).state == "idle"
