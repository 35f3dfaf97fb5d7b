"""The worker over a fake runlog: claims, fencing, the heartbeat rule, failures and drain."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest

from services.sdk import (
    Client,
    CommandError,
    LeaseLost,
    RetryPolicy,
    TaskContext,
    TaskEnd,
    TaskFailure,
    Worker,
    WorkerConfig,
    error_class_of,
)
from services.sdk.testing import FakeRunlog, error
from tests.support.nats_server import wait_until

FAST = WorkerConfig(heartbeat_interval_s=0.01, stall_timeout_s=30.0,
                    idle_backoff_initial_s=0.001, idle_backoff_max_s=0.005,
                    liveness_interval_s=60.0, handle_signals=False)


class Harness:
    """A worker on a fake runlog, started in the background."""

    def __init__(self, handler: Callable[[TaskContext], object], capacity: int = 1,
                 config: WorkerConfig = FAST) -> None:
        self.fake = FakeRunlog()
        self.ends: list[TaskEnd] = []
        client = Client(self.fake, retry=RetryPolicy(attempts=3, wait_initial_s=0,
                                                     wait_max_s=0, wait_jitter_s=0))
        self.worker = Worker(client, "w1", handler, kinds=["llm"],  # type: ignore[arg-type]
                             capacity=capacity, config=config, on_task_end=self.ends.append)
        self.running: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.running = asyncio.create_task(self.worker.run())

    async def until(self, condition: Callable[[], bool]) -> None:
        async def probe() -> bool:
            return condition()
        await wait_until(probe, bool, timeout_s=10)

    async def stopped(self) -> None:
        """Stops the worker and waits until it has drained."""
        assert self.running is not None
        self.worker.stop()
        await asyncio.wait_for(self.running, 10)

    def after(self, subject: str) -> list[str]:
        """The subjects sent after the first ``subject``."""
        subjects = self.fake.subjects()
        return subjects[subjects.index(subject) + 1:]


async def succeed_with_usage(task: TaskContext) -> Mapping[str, object]:
    await task.record_usage("gpt-4.1-mini", tokens_in=10, tokens_out=5, latency_ms=12.0)
    return {"double": 2 * int(task.payload["n"])}


async def test_tasks_run_end_to_end_with_fenced_finishes_and_usage_ids() -> None:
    h = Harness(succeed_with_usage, capacity=2)
    for n in range(3):
        h.fake.submit(f"t{n}", n=n)
    h.start()
    await h.until(lambda: len(h.ends) == 3)
    await h.stopped()
    assert {(e.task.task_id, e.outcome) for e in h.ends} == {
        ("t0", "succeeded"), ("t1", "succeeded"), ("t2", "succeeded")}
    succeeded = sorted(h.fake.of("task.succeed"), key=lambda b: b["task_id"])
    assert [(b["worker_id"], b["lease_epoch"], b["result"]) for b in succeeded] == [
        ("w1", 1, {"double": 0}), ("w1", 1, {"double": 2}), ("w1", 1, {"double": 4})]
    usage = h.fake.of("usage.record")
    assert {(u["run_id"], u["worker_id"], u["model"]) for u in usage} == {
        ("r1", "w1", "gpt-4.1-mini")}
    assert sorted(u["task_id"] for u in usage) == ["t0", "t1", "t2"]
    assert h.fake.of("worker.register") == [
        {"worker_id": "w1", "kinds": ["llm"], "capacity": 2,
         "command_id": h.fake.of("worker.register")[0]["command_id"]}]
    assert h.fake.subjects()[-2:] == ["worker.drain", "worker.deregister"]


async def test_no_more_tasks_run_at_once_than_the_capacity() -> None:
    release = asyncio.Event()

    async def blocked(task: TaskContext) -> None:
        await release.wait()

    h = Harness(blocked, capacity=2)
    for n in range(3):
        h.fake.submit(f"t{n}", n=n)
    h.start()
    await h.until(lambda: len(h.fake.of("task.start")) == 2)
    assert h.worker.running == 2
    assert len(h.fake.of("task.claim")) == 2  # a full worker does not ask for more
    release.set()
    await h.until(lambda: len(h.ends) == 3)
    await h.stopped()


@pytest.mark.parametrize(("raised", "error_class", "message"), [
    (TaskFailure("rate_limit", "429 from the provider"), "rate_limit", "429 from the provider"),
    (TaskFailure("context_overflow"), "context_overflow", ""),
    (TimeoutError("model call"), "timeout", "TimeoutError: model call"),
    (ConnectionResetError("peer"), "network", "ConnectionResetError: peer"),
    (ValueError("boom"), "unknown", "ValueError: boom"),
])
async def test_a_raising_handler_fails_the_attempt_with_its_error_class(
        raised: Exception, error_class: str, message: str) -> None:
    async def failing(task: TaskContext) -> None:
        raise raised

    h = Harness(failing)
    h.fake.submit("t1")
    h.start()
    await h.until(lambda: len(h.ends) == 1)
    await h.stopped()
    [failed] = h.fake.of("task.fail")
    assert (failed["error_class"], failed["message"], failed["lease_epoch"]) == (
        error_class, message, 1)
    assert (h.ends[0].outcome, h.ends[0].error_class, h.ends[0].error) == (
        "failed", error_class, raised)
    assert h.fake.of("task.succeed") == []


async def test_a_providers_retry_after_goes_with_the_failure() -> None:
    async def limited(task: TaskContext) -> None:
        raise TaskFailure("rate_limit", "429", retry_after_s=30.0)

    h = Harness(limited)
    h.fake.submit("t1")
    h.start()
    await h.until(lambda: len(h.ends) == 1)
    await h.stopped()
    [failed] = h.fake.of("task.fail")
    assert (failed["error_class"], failed["retry_after_s"]) == ("rate_limit", 30.0)


async def test_a_result_after_the_lease_moved_on_is_abandoned() -> None:
    h = Harness(lambda task: _revoked_then_done(h.fake, task))
    h.fake.submit("t1")
    h.start()
    await h.until(lambda: len(h.ends) == 1)
    await h.stopped()
    [end] = h.ends
    assert end.outcome == "abandoned"
    assert isinstance(end.error, CommandError)
    assert end.error.code == "lease_mismatch"
    assert len(h.fake.of("task.succeed")) == 1  # refused by the fence...
    assert h.fake.of("task.fail") == []  # ...and not reported any other way


async def _revoked_then_done(fake: FakeRunlog, task: TaskContext) -> Mapping[str, object]:
    fake.revoke(task.task_id)
    return {"late": True}


async def test_a_heartbeat_that_finds_the_lease_gone_cancels_the_handler() -> None:
    cancelled = asyncio.Event()

    async def working(task: TaskContext) -> None:
        try:
            while True:
                task.progress()
                await asyncio.sleep(0.005)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    h = Harness(working)
    h.fake.submit("t1")
    h.start()
    await h.until(lambda: len(h.fake.of("task.heartbeat")) >= 1)
    h.fake.revoke("t1")
    await h.until(lambda: len(h.ends) == 1)
    await h.stopped()
    assert cancelled.is_set()
    assert h.ends[0].outcome == "abandoned"
    assert isinstance(h.ends[0].error, LeaseLost)
    assert h.fake.of("task.succeed") == h.fake.of("task.fail") == []


async def test_the_handlers_own_heartbeat_raises_lease_lost() -> None:
    seen: list[BaseException] = []

    async def beating(task: TaskContext) -> None:
        h.fake.revoke(task.task_id)
        try:
            await task.heartbeat()
        except LeaseLost as lost:
            seen.append(lost)
            raise

    h = Harness(beating)
    h.fake.submit("t1")
    h.start()
    await h.until(lambda: len(h.ends) == 1)
    await h.stopped()
    assert len(seen) == 1
    assert h.ends[0].outcome == "abandoned"
    assert h.fake.of("task.succeed") == h.fake.of("task.fail") == []


async def test_a_progressing_handler_keeps_its_lease_extended() -> None:
    async def long_running(task: TaskContext) -> None:
        while len(h.fake.of("task.heartbeat")) < 5:
            task.progress()
            await asyncio.sleep(0.005)

    h = Harness(long_running)
    h.fake.submit("t1")
    h.start()
    await h.until(lambda: len(h.ends) == 1)
    await h.stopped()
    assert h.ends[0].outcome == "succeeded"
    beats = h.fake.of("task.heartbeat")
    assert {(b["task_id"], b["worker_id"], b["lease_epoch"]) for b in beats} == {("t1", "w1", 1)}


async def test_a_hung_handler_stops_heartbeating_is_cancelled_and_fails_as_timeout() -> None:
    cancelled = asyncio.Event()

    async def hung(task: TaskContext) -> None:
        try:
            await asyncio.Event().wait()  # no progress, ever
        except asyncio.CancelledError:
            cancelled.set()
            raise

    h = Harness(hung, config=WorkerConfig(
        heartbeat_interval_s=0.01, stall_timeout_s=0.05, idle_backoff_initial_s=0.001,
        idle_backoff_max_s=0.005, handle_signals=False))
    h.fake.submit("t1")
    h.start()
    await h.until(lambda: len(h.ends) == 1)
    await h.stopped()
    assert cancelled.is_set()
    [failed] = h.fake.of("task.fail")
    assert failed["error_class"] == "timeout"
    assert "no progress for 0.05 s" in failed["message"]
    assert "task.heartbeat" not in h.after("task.fail")


async def test_drain_finishes_the_task_in_flight_claims_no_more_then_deregisters() -> None:
    release = asyncio.Event()

    async def slow(task: TaskContext) -> Mapping[str, object]:
        await release.wait()
        return {"done": True}

    h = Harness(slow)
    h.fake.submit("t1")
    h.fake.submit("t2")
    h.start()
    await h.until(lambda: len(h.fake.of("task.start")) == 1)
    h.worker.stop()
    await h.until(lambda: "worker.drain" in h.fake.subjects())
    release.set()
    assert h.running is not None
    await asyncio.wait_for(h.running, 10)
    assert [e.outcome for e in h.ends] == ["succeeded"]
    assert "task.claim" not in h.after("worker.drain")
    assert h.after("worker.drain")[-2:] == ["task.succeed", "worker.deregister"]
    assert [t["task_id"] for t in h.fake.queued] == ["t2"]


async def test_a_second_stop_abandons_what_still_runs() -> None:
    async def endless(task: TaskContext) -> None:
        while True:
            task.progress()
            await asyncio.sleep(0.005)

    h = Harness(endless)
    h.fake.submit("t1")
    h.start()
    await h.until(lambda: len(h.fake.of("task.start")) == 1)
    h.worker.stop()
    await h.stopped()
    assert h.fake.of("task.succeed") == h.fake.of("task.fail") == []
    assert h.fake.subjects()[-1] == "worker.deregister"


async def test_a_cancelled_run_takes_its_tasks_with_it() -> None:
    cancelled = asyncio.Event()

    async def endless(task: TaskContext) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    h = Harness(endless)
    h.fake.submit("t1")
    h.start()
    await h.until(lambda: len(h.fake.of("task.start")) == 1)
    assert h.running is not None
    h.running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await h.running
    assert cancelled.is_set()
    assert h.worker.running == 0


async def test_a_failing_task_end_callback_is_logged_and_work_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(succeed_with_usage)
    h.worker.on_task_end = lambda end: [][0]  # raises IndexError
    h.fake.submit("t1", n=1)
    h.fake.submit("t2", n=2)
    h.start()
    await h.until(lambda: len(h.fake.of("task.succeed")) == 2)
    await h.stopped()
    failed = [r for r in caplog.records if r.getMessage().startswith("on_task_end of w1 failed")]
    assert len(failed) == 2
    assert all(r.exc_info and r.exc_info[0] is IndexError for r in failed)


async def test_an_empty_queue_is_polled_until_a_task_comes() -> None:
    h = Harness(succeed_with_usage)
    h.start()
    await h.until(lambda: len(h.fake.of("task.claim")) >= 3)
    h.fake.submit("t1", n=1)
    await h.until(lambda: len(h.ends) == 1)
    await h.stopped()
    assert h.ends[0].outcome == "succeeded"


async def test_a_refused_claim_or_a_standing_registration_does_not_stop_the_worker() -> None:
    h = Harness(succeed_with_usage)
    h.fake.script("worker.register", error("already_exists"))
    h.fake.script("task.claim", error("invalid_transition", "at capacity"))
    h.fake.submit("t1", n=1)
    h.start()
    await h.until(lambda: len(h.ends) == 1)
    await h.stopped()
    assert h.ends[0].outcome == "succeeded"


async def test_a_refused_start_abandons_the_task_without_running_it() -> None:
    ran: list[str] = []

    async def handler(task: TaskContext) -> None:
        ran.append(task.task_id)

    h = Harness(handler)
    h.fake.script("task.start", error("lease_mismatch"))
    h.fake.submit("t1")
    h.start()
    await h.until(lambda: len(h.ends) == 1)
    await h.stopped()
    assert ran == []
    assert h.ends[0].outcome == "abandoned"


async def test_a_result_runlog_refuses_fails_the_attempt_as_unknown() -> None:
    h = Harness(succeed_with_usage)
    h.fake.script("task.succeed", error("validation_failed", "result: too large"))
    h.fake.submit("t1", n=1)
    h.start()
    await h.until(lambda: len(h.ends) == 1)
    await h.stopped()
    [failed] = h.fake.of("task.fail")
    assert (failed["error_class"], failed["message"]) == ("unknown",
                                                          "result refused: result: too large")


async def test_a_result_that_is_not_json_fails_the_attempt_as_unknown() -> None:
    async def returns_an_object(task: TaskContext) -> Mapping[str, object]:
        return {"answer": object()}  # a handler's bug: nothing JSON can hold

    h = Harness(returns_an_object)
    h.fake.submit("t1")
    h.start()
    await h.until(lambda: len(h.ends) == 1)
    await h.stopped()
    assert "task.succeed" not in h.fake.subjects()  # refused before anything was sent
    [failed] = h.fake.of("task.fail")
    assert failed["error_class"] == "unknown"
    assert str(failed["message"]).startswith("result refused: the body is not JSON")
    assert [end.outcome for end in h.ends] == ["failed"]


async def test_the_worker_reports_itself_alive_while_it_runs() -> None:
    h = Harness(succeed_with_usage, config=WorkerConfig(
        liveness_interval_s=0.01, idle_backoff_max_s=0.01, handle_signals=False))
    h.start()
    await h.until(lambda: len(h.fake.of("worker.heartbeat")) >= 2)
    await h.stopped()
    assert "worker.heartbeat" not in h.after("worker.deregister")


def test_an_unknown_error_class_is_refused_when_raised() -> None:
    with pytest.raises(ValueError, match="unknown error class 'oops'"):
        TaskFailure("oops")  # type: ignore[arg-type]


def test_an_exception_maps_to_a_documented_error_class() -> None:
    assert error_class_of(CommandError("runlog.cmd.x", "unavailable", "down"))[0] == "network"
    assert error_class_of(CommandError("runlog.cmd.x", "budget_exceeded", "spent"))[0] == (
        "unknown")
    assert error_class_of(TaskFailure("auth", "x" * 5000))[1] == "x" * 2000
