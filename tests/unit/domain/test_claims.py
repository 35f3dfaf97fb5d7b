"""Claims decided on the board of open tasks: order, capacity, and occupancy derived from leases."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.base import Command, DomainEvent
from events.catalog.task import TaskSucceeded
from events.commands.task import CancelTask, FailTask, SubmitTask, SucceedTask
from events.errors import ErrorCode
from services.domain import Context, DomainError, claims, task
from services.domain.claims import TaskBoard
from services.domain.task import TaskState
from services.domain.worker import WorkerState

from .support import LATER, NOW, ctx, running_run

TTL = 30.0


def _worker(worker_id: str = "w1", capacity: int = 2, state: str = "idle") -> WorkerState:
    return WorkerState(worker_id=worker_id, state=state, capacity=capacity, kinds=("llm",))


def _submitted(task_id: str, priority: int = 5, kind: str = "llm") -> TaskState:
    command = SubmitTask(task_id=task_id, run_id="r1", kind=kind, priority=priority)
    return task.evolve(None, task.submit(None, command, ctx(related=running_run())))


def _board(*tasks: TaskState) -> TaskBoard:
    board = TaskBoard()
    for order, state in enumerate(tasks, start=1):
        board.put(state, order)
    return board


def _claim(board: TaskBoard, worker: WorkerState, now: datetime = NOW) -> TaskState | None:
    """Claims and files the lease on the board, as the service does after the append."""
    decided = claims.claim(board, worker, [], ctx(now=now), TTL)
    if decided is None:
        return None
    leased = task.evolve(decided.task, decided.leased)
    board.put(leased, 0)
    return leased


def test_priority_first_then_submission_order() -> None:
    board = _board(_submitted("a", 3), _submitted("b", 7), _submitted("c", 5),
                   _submitted("d", 7), _submitted("e", 0), _submitted("f", 9))
    worker = _worker(capacity=10)
    order = [leased.task_id for _ in range(6) if (leased := _claim(board, worker))]
    assert order == ["f", "b", "d", "c", "a", "e"]
    assert _claim(board, worker) is None


def test_only_the_workers_kinds() -> None:
    board = _board(_submitted("t1", 9, kind="tool"), _submitted("t2", 1))
    decided = claims.claim(board, _worker(), ["llm"], ctx(), TTL)
    assert decided is not None
    assert decided.task.task_id == "t2"


def test_held_tasks_are_derived_from_live_leases() -> None:
    board = _board(_submitted("t1"), _submitted("t2"), _submitted("t3"))
    worker = _worker(capacity=2)
    first, second = _claim(board, worker), _claim(board, worker)
    assert first is not None
    assert second is not None
    assert board.held_by("w1") == {"t1", "t2"}
    with pytest.raises(DomainError) as full:
        _claim(board, worker)
    assert (full.value.code, full.value.message) == (ErrorCode.INVALID_TRANSITION,
                                                     "worker w1 is at capacity (2 of 2)")
    done = task.evolve(first, TaskSucceeded(task_id="t1", worker_id="w1", lease_epoch=1,
                                            attempt=1))
    board.put(done, 0)
    assert board.held_by("w1") == {"t2"}
    assert board.get("t1") is None  # an ended task leaves the board
    third = _claim(board, worker)
    assert third is not None
    assert third.task_id == "t3"


def test_a_draining_worker_gets_nothing() -> None:
    with pytest.raises(DomainError) as refused:
        _claim(_board(_submitted("t1")), _worker(state="draining"))
    assert refused.value.message == "worker w1 is draining; assign needs idle/busy"


def test_a_due_retry_leads_its_priority_and_a_waiting_one_is_not_claimable() -> None:
    retrying = replace(_submitted("late", 5), state="retry_wait", retry_at=LATER, attempts=1)
    board = _board(_submitted("t1", 5), retrying)
    worker = _worker(capacity=5)
    assert [t.task_id for t in board.candidates([], NOW)] == ["t1"]
    leased = _claim(board, worker, LATER)
    assert leased is not None
    assert (leased.task_id, leased.attempts) == ("late", 2)
    after = _claim(board, worker, LATER)
    assert after is not None
    assert after.task_id == "t1"


def test_a_due_retry_waits_behind_a_higher_priority() -> None:
    retrying = replace(_submitted("late", 1), state="retry_wait", retry_at=LATER, attempts=1)
    board = _board(_submitted("t1", 9), retrying)
    worker = _worker(capacity=5)
    claimed = [_claim(board, worker, LATER), _claim(board, worker, LATER)]
    assert [c.task_id for c in claimed if c is not None] == ["t1", "late"]


def test_lapsed_leases_are_found_by_their_expiry() -> None:
    board = _board(_submitted("t1"), _submitted("t2"))
    _claim(board, _worker(capacity=2))
    assert board.lapsed_leases(NOW) == []
    lapsed = board.lapsed_leases(NOW + timedelta(seconds=TTL + 1))
    assert [t.task_id for t in lapsed] == ["t1"]


_STEP = st.tuples(st.sampled_from(["claim", "succeed", "fail", "expire", "cancel"]),
                  st.integers(0, 2), st.integers(0, 5))


@settings(max_examples=200, deadline=None)
@given(st.lists(_STEP, max_size=60))
def test_no_task_is_leased_twice_and_no_worker_overfills(steps: list[tuple[str, int, int]]
                                                         ) -> None:
    """Whatever order claims and lease endings come in, occupancy equals the live leases."""
    tasks = [_submitted(f"t{n}", n % 3) for n in range(6)]
    board = _board(*tasks)
    states = {t.task_id: t for t in tasks}
    workers = [_worker(f"w{n}", capacity=n + 1) for n in range(3)]
    now = NOW
    for action, worker_n, task_n in steps:
        now += timedelta(seconds=1)
        worker, state = workers[worker_n], states[f"t{task_n}"]
        try:
            if action == "claim":
                leased = _claim(board, worker, now)
                if leased is not None:
                    states[leased.task_id] = leased
                continue
            events = _end(state, action, ctx(now=now + timedelta(seconds=TTL * 2)))
        except DomainError:
            continue
        for event in events:
            state = task.evolve(state, event)
        states[state.task_id] = state
        board.put(state, 0)
    held = Counter(s.worker_id for s in states.values() if s.held)
    for worker in workers:
        assert board.held_by(worker.worker_id) == {
            s.task_id for s in states.values() if s.held and s.worker_id == worker.worker_id}
        assert held[worker.worker_id] <= worker.capacity
    assert {s.task_id for s in board.tasks()} == {
        s.task_id for s in states.values() if s.state not in ("succeeded", "failed", "cancelled")}


def _end(state: TaskState, action: str, later: Context) -> list[DomainEvent]:
    holder, epoch = state.worker_id or "w0", max(state.lease_epoch, 1)
    command: Command | None = {
        "succeed": SucceedTask(task_id=state.task_id, worker_id=holder, lease_epoch=epoch),
        "fail": FailTask(task_id=state.task_id, worker_id=holder, lease_epoch=epoch,
                         error_class="timeout"),
        "cancel": CancelTask(task_id=state.task_id)}.get(action)
    if command is None:
        return task.expire_lease(state, later)
    return task.decide(state, command, ctx())
