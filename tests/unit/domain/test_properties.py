"""Random command sequences against each machine only ever write valid, replayable histories.

Each step decides a command (or calls a pure helper such as ``lease``) on the
current state; a refusal (``DomainError``) writes nothing, anything else is a bug.
Accepted events must fit the table one by one, survive the JSON round trip of
the log, and replay from scratch into the very same state.

The walks are drawn from a seeded random generator rather than element by
element: that explores long sequences evenly at a fraction of the cost, and
hypothesis still shrinks a failure to its shortest failing prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from events.base import Command, DomainEvent
from events.catalog import event_class
from events.catalog.budget import BudgetCharged
from events.catalog.run import RunBudget
from events.commands.breaker import (
    AcquireBreaker,
    ConfigureBreaker,
    RecordBreakerOutcome,
    ResetBreaker,
)
from events.commands.budget import CloseBudget, CreateBudget, RaiseBudget
from events.commands.gate import CreateGate, FailGate, PassGate, StartGate, WaiveGate
from events.commands.model import RegisterModel
from events.commands.patch import (
    AcceptPatch,
    ApplyPatch,
    CommitPatch,
    MarkPatchApplied,
    ProposePatch,
    RejectPatch,
    RollBackPatch,
    TestPatch,
    ValidatePatch,
    VerifyPatch,
)
from events.commands.run import CancelRun, CreateRun, FailRun, RecordUsage, StartRun, SucceedRun
from events.commands.task import (
    BlockTask,
    CancelTask,
    DeferTask,
    ExpireTaskLease,
    FailTask,
    HeartbeatTask,
    QueueTask,
    RequeueTask,
    StartTask,
    SubmitTask,
    SucceedTask,
    UnblockTask,
)
from events.commands.worker import (
    DeregisterWorker,
    DrainWorker,
    HeartbeatWorker,
    MarkWorkerLost,
    RegisterWorker,
)
from events.commands.workstream import (
    BlockWorkstream,
    CancelWorkstream,
    CreateWorkstream,
    FailWorkstream,
    MarkWorkstreamReady,
    PauseWorkstream,
    ResumeWorkstream,
    SkipWorkstream,
    StartWorkstream,
    SucceedWorkstream,
    UnblockWorkstream,
)
from events.errors import ErrorCode
from services.domain import (
    MACHINES,
    Context,
    DomainError,
    Price,
    breaker,
    model,
    task,
)
from services.domain.machine import targets_of
from services.domain.workstream import WorkstreamState

from .support import NOW, facts_of, running_run

Step = Callable[[Any, Context], list[DomainEvent]]


@dataclass(frozen=True)
class Action:
    """One step of a random sequence, named for hypothesis' failure reports."""

    name: str
    step: Step

    def __repr__(self) -> str:
        return self.name


def command(aggregate: str, cmd: Command, related: Any = None,
            held: tuple[str, ...] = ()) -> Action:
    """Decides ``cmd`` with ``related`` facts (see ``support.facts_of``)."""
    def step(state: Any, ctx: Context) -> list[DomainEvent]:
        facts = facts_of(related, held)
        return MACHINES[aggregate].decide(state, cmd, Context(ctx.now, ctx.price, facts))
    name = f"{cmd.subject}(held={list(held)})" if held else cmd.subject
    return Action(name, step)


def helper(name: str, call: Callable[[Any, Context], list[DomainEvent]]) -> Action:
    """Calls a pure helper (``lease``, ``assign``, ...) on an existing state."""
    def step(state: Any, ctx: Context) -> list[DomainEvent]:
        if state is None:
            raise DomainError(ErrorCode.NOT_FOUND, "nothing to act on")
        return call(state, ctx)
    return Action(name, step)


PRICE = Price("acme", Decimal(1), Decimal(2), NOW)


def check_history(aggregate: str, steps: list[tuple[Action, int]]) -> Any:
    """Runs the actions; asserts the table and replay properties; returns the final state."""
    machine = MACHINES[aggregate]
    state: Any = None
    history: list[DomainEvent] = []
    now = NOW
    for action, pause in steps:
        now += timedelta(seconds=pause)
        try:
            events = action.step(state, Context(now=now, price=PRICE))
        except DomainError:
            continue
        for event in events:
            before = state.state if state is not None else None
            assert (before, event.type_name()) in machine.table.edges
            state = machine.evolve(state, event)
            assert state.state in targets_of(machine.table.edges[(before, event.type_name())])
        history.extend(events)
    replayed: Any = None
    for event in history:
        stored = event_class(event.type_name()).model_validate(event.fields())
        assert stored == event
        replayed = machine.evolve(replayed, stored)
    assert replayed == state
    return state


PAUSES = (0, 0, 1, 3, 12, 40)
"""Seconds before a step: often none, sometimes past a lease, cooldown or retry time."""


@st.composite
def walks(
    draw: st.DrawFn, actions: Sequence[Action], first: Sequence[Action] = ()
) -> list[tuple[Action, int]]:
    """A random walk: usually one of ``first`` (a creation), then up to 80 actions."""
    rng = draw(st.randoms(use_true_random=True))
    length = draw(st.integers(1, 80))
    opening = [(rng.choice(first), 0)] if first and rng.random() < 0.9 else []
    return opening + [(rng.choice(actions), rng.choice(PAUSES)) for _ in range(length)]


PROPERTY = settings(max_examples=200, deadline=None)

# -- run ---------------------------------------------------------------------------------

RUN_CREATE = command("run", CreateRun(run_id="r1", name="n", budget=RunBudget(max_tokens=50)))
RUN_ACTIONS = [
    RUN_CREATE,
    command("run", StartRun(run_id="r1")),
    command("run", SucceedRun(run_id="r1")),
    command("run", FailRun(run_id="r1")),
    command("run", CancelRun(run_id="r1")),
    command("run", RecordUsage(run_id="r1", model="m", tokens_in=20, tokens_out=10)),
]


@PROPERTY
@given(walks(RUN_ACTIONS, [RUN_CREATE]))
def test_run_histories(steps: list[tuple[Action, int]]) -> None:
    state = check_history("run", steps)
    if state is not None:
        assert state.over_budget == (state.tokens > 50)


# -- workstream ----------------------------------------------------------------------------

_DONE_DEP = {"ws0": WorkstreamState("ws0", "r1", "dep", "succeeded")}
_OPEN_DEP = {"ws0": WorkstreamState("ws0", "r1", "dep", "running")}
WORKSTREAM_CREATES = [
    command("workstream", CreateWorkstream(workstream_id="ws1", run_id="r1", name="n"),
            running_run()),
    command("workstream", CreateWorkstream(workstream_id="ws1", run_id="r1", name="n",
                                           depends_on=["ws0"]), running_run()),
]
WORKSTREAM_ACTIONS = [
    *WORKSTREAM_CREATES,
    command("workstream", MarkWorkstreamReady(workstream_id="ws1"), _DONE_DEP),
    command("workstream", MarkWorkstreamReady(workstream_id="ws1"), _OPEN_DEP),
    *(command("workstream", cls(workstream_id="ws1")) for cls in (
        StartWorkstream, PauseWorkstream, ResumeWorkstream, BlockWorkstream,
        UnblockWorkstream, SucceedWorkstream, FailWorkstream, CancelWorkstream,
        SkipWorkstream)),
]


@PROPERTY
@given(walks(WORKSTREAM_ACTIONS, WORKSTREAM_CREATES))
def test_workstream_histories(steps: list[tuple[Action, int]]) -> None:
    check_history("workstream", steps)


# -- task ----------------------------------------------------------------------------------


def _holder(cls: type[Any], worker_id: str, current: bool, **fields: Any) -> Action:
    """A holder command with the task's current epoch, or a stale one."""
    def step(state: Any, ctx: Context) -> list[DomainEvent]:
        epoch = state.lease_epoch if state is not None else 1
        cmd = cls(task_id="t1", worker_id=worker_id,
                  lease_epoch=max(1, epoch if current else epoch - 1), **fields)
        return MACHINES["task"].decide(state, cmd, ctx)
    return Action(f"{cls.subject}({worker_id}, current={current}, {fields})", step)


def _expire(current: bool) -> Action:
    def step(state: Any, ctx: Context) -> list[DomainEvent]:
        epoch = max(1, state.lease_epoch if state is not None else 1)
        cmd = ExpireTaskLease(task_id="t1", lease_epoch=epoch if current else epoch + 1)
        return MACHINES["task"].decide(state, cmd, ctx)
    return Action(f"task.expire_lease(current={current})", step)


def _lease(worker_id: str) -> Action:
    return helper(f"lease({worker_id})", lambda s, c: [task.lease(s, worker_id, c, 10.0)])


_DEP_DONE = {"t0": task.TaskState("t0", "r1", "k", "succeeded", NOW)}
TASK_SUBMITS = [
    command("task", SubmitTask(task_id="t1", run_id="r1", kind="k", priority=priority,
                               max_attempts=attempts, depends_on=deps), running_run())
    for priority, attempts, deps in [(5, 3, []), (9, 1, []), (0, 2, ["t0"])]
]
# Weighted toward the current holder, so walks get past the lease checks.
TASK_ACTIONS = [
    *TASK_SUBMITS,
    _lease("w1"), _lease("w1"), _lease("w2"),
    *(_holder(cls, worker_id, current)
      for cls in (StartTask, StartTask, HeartbeatTask, SucceedTask)
      for worker_id, current in [("w1", True), ("w1", True), ("w2", True), ("w1", False)]),
    *(_holder(FailTask, "w1", True, error_class=error_class)
      for error_class in ("timeout", "rate_limit", "auth", "invalid_request")),
    _holder(FailTask, "w2", True, error_class="timeout"),
    _holder(FailTask, "w1", False, error_class="timeout"),
    helper("expire_lease", task.expire_lease),
    _expire(True),
    _expire(False),
    command("task", CancelTask(task_id="t1")),
    command("task", BlockTask(task_id="t1")),
    command("task", UnblockTask(task_id="t1"), _DEP_DONE),
    command("task", UnblockTask(task_id="t1")),
    command("task", DeferTask(task_id="t1", not_before=NOW + timedelta(seconds=30))),
    command("task", RequeueTask(task_id="t1")),
    command("task", QueueTask(task_id="t1")),
]


@PROPERTY
@given(walks(TASK_ACTIONS, TASK_SUBMITS))
def test_task_histories(steps: list[tuple[Action, int]]) -> None:
    state = check_history("task", steps)
    if state is None:
        return
    assert 0 <= state.attempts <= state.max_attempts
    assert state.lease_epoch >= state.attempts
    assert (state.lease_expires_at is not None) == state.held
    assert (state.retry_at is not None) == (state.state == "retry_wait")


# -- worker --------------------------------------------------------------------------------

WORKER_REGISTERS = [
    command("worker", RegisterWorker(worker_id="w1", kinds=["k"], capacity=capacity))
    for capacity in (1, 2, 3)
]
WORKER_ACTIONS = [
    *WORKER_REGISTERS,
    *(command("worker", cls(worker_id="w1"), held=held)
      for cls in (HeartbeatWorker, DrainWorker, DeregisterWorker, MarkWorkerLost)
      for held in ((), ("t1",), ("t1", "t2")))
]


@PROPERTY
@given(walks(WORKER_ACTIONS, WORKER_REGISTERS))
def test_worker_histories(steps: list[tuple[Action, int]]) -> None:
    state = check_history("worker", steps)
    if state is None:
        return
    assert state.free_slots(0) == (state.capacity if state.accepting else 0)


# -- breaker -------------------------------------------------------------------------------


def _acquire(probe: str) -> Action:
    def step(state: Any, ctx: Context) -> list[DomainEvent]:
        events = breaker.decide(state, AcquireBreaker(breaker_id="b1", probe_id=probe), ctx)
        allowed = breaker.acquire_allowed(state, events, ctx)
        assert allowed == (state is None or state.state == "closed" or bool(events))
        return events
    return Action(f"breaker.acquire({probe})", step)


BREAKER_CONFIGURES = [
    command("breaker", ConfigureBreaker(breaker_id="b1", failure_threshold=threshold,
                                        cooldown_s=cooldown))
    for threshold in (1, 2, 3) for cooldown in (5.0, 30.0)
]
BREAKER_ACTIONS = [
    *BREAKER_CONFIGURES[::2],
    *[command("breaker", RecordBreakerOutcome(breaker_id="b1", outcome="failure"))] * 3,
    *[command("breaker", RecordBreakerOutcome(breaker_id="b1", outcome="success"))] * 2,
    command("breaker", ResetBreaker(breaker_id="b1")),
    _acquire("p1"),
    _acquire("p2"),
]


@PROPERTY
@given(walks(BREAKER_ACTIONS, BREAKER_CONFIGURES))
def test_breaker_histories(steps: list[tuple[Action, int]]) -> None:
    state = check_history("breaker", steps)
    if state is None:
        return
    assert (state.open_until is not None) == (state.state != "closed")
    assert (state.probe_deadline is not None) == (state.state == "half_open")


# -- patch and gate ------------------------------------------------------------------------

PATCH_PROPOSE = command("patch", ProposePatch(patch_id="p1", run_id="r1", title="t"),
                        running_run())
PATCH_ACTIONS = [
    PATCH_PROPOSE,
    *(command("patch", cls(patch_id="p1")) for cls in (
        ValidatePatch, AcceptPatch, RejectPatch, ApplyPatch, MarkPatchApplied, TestPatch,
        VerifyPatch, CommitPatch, RollBackPatch)),
]

GATE_CREATE = command("gate", CreateGate(gate_id="g1", run_id="r1", name="g"), running_run())
GATE_ACTIONS = [
    GATE_CREATE,
    command("gate", StartGate(gate_id="g1")),
    command("gate", PassGate(gate_id="g1")),
    command("gate", FailGate(gate_id="g1")),
    command("gate", WaiveGate(gate_id="g1", by="alice")),
]


@PROPERTY
@given(walks(PATCH_ACTIONS, [PATCH_PROPOSE]))
def test_patch_histories(steps: list[tuple[Action, int]]) -> None:
    check_history("patch", steps)


@PROPERTY
@given(walks(GATE_ACTIONS, [GATE_CREATE]))
def test_gate_histories(steps: list[tuple[Action, int]]) -> None:
    check_history("gate", steps)


# -- model and budget ----------------------------------------------------------------------

_DATES = [NOW - timedelta(days=d) for d in (0, 5, 10)]
MODEL_ACTIONS = [
    command("model", RegisterModel(model="gemini-2.5-pro", provider="google",
                                   input_usd_per_mtok=price, output_usd_per_mtok=price * 2,
                                   effective_from=when))
    for price in (Decimal(0), Decimal(1), Decimal("2.5")) for when in (None, *_DATES)
]


@PROPERTY
@given(walks(MODEL_ACTIONS))
def test_model_histories(steps: list[tuple[Action, int]]) -> None:
    state = check_history("model", steps)
    if state is None:
        return
    dates: list[datetime] = [p.effective_from for p in state.prices]
    assert dates == sorted(set(dates))
    for entry in state.prices:
        assert model.price_at(state, entry.effective_from) == entry


BUDGET_CREATES = [
    command("budget", CreateBudget(budget_id="b1", name="b", max_tokens=tokens,
                                   max_cost_usd=cost))
    for tokens in (None, 0, 300) for cost in (None, Decimal("2.5"))
]


def _charge(tokens: int, cost: float) -> Action:
    """A charge as older logs recorded it (now a budget's spending is its runs' usage)."""
    return helper(f"charge({tokens}, {cost})", lambda s, c: [BudgetCharged(
        budget_id=s.budget_id, run_id="r1", tokens=tokens, cost_usd=Decimal(str(cost)))])


BUDGET_ACTIONS = [
    *BUDGET_CREATES[::3],
    *(command("budget", RaiseBudget(budget_id="b1", max_tokens=tokens))
      for tokens in (200, 600, 2000)),
    command("budget", RaiseBudget(budget_id="b1", max_cost_usd=Decimal(5))),
    command("budget", CloseBudget(budget_id="b1")),
    *(_charge(tokens, cost) for tokens, cost in [(0, 0.0), (50, 0.3), (120, 1.1), (7, 0.01)]),
]


@PROPERTY
@given(walks(BUDGET_ACTIONS, BUDGET_CREATES))
def test_budget_histories(steps: list[tuple[Action, int]]) -> None:
    state = check_history("budget", steps)
    if state is None:
        return
    # Spending is its runs' usage (charges of older logs fold in too), so an active budget
    # may be spent: submissions check reached() beside the state.
    if state.state == "exhausted":
        assert state.reached()
