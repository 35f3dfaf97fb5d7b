"""Recovery strategies as data: one test per error class, overrides, hints, fallback chains."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from events.catalog.task import (
    ERROR_CLASSES,
    RetryInstruction,
    TaskFailed,
    TaskLeased,
    TaskRetryScheduled,
)
from events.commands.task import FailTask, SubmitTask
from services.domain.context import Context, Facts
from services.domain.recovery import (
    DEFAULT_RECOVERY,
    Strategy,
    jittered_backoff_s,
    next_model,
    plan_recovery,
)
from services.domain.task import TaskState, decide, expire_lease, lease

from .support import NOW, ctx, fold, running_run

EXPECTED = {
    "rate_limit": "backoff", "timeout": "backoff", "server_error": "fallback",
    "network": "backoff", "lease_expired": "backoff", "context_overflow": "truncate",
    "invalid_request": "fail_fast", "auth": "escalate", "content_filter": "escalate",
    "tool_error": "fail_fast", "unknown": "fail_fast",
}
CHAIN = ("m-b", "m-c")


def _leased(model: str | None = "m-a", max_attempts: int = 3, **fields: Any) -> TaskState:
    submit = SubmitTask(task_id="t1", run_id="r1", kind="llm", model=model,
                        max_attempts=max_attempts, **fields)
    state: TaskState = fold("task", decide(None, submit, ctx(related=running_run())))
    leased: TaskState = fold("task", [lease(state, "w1", ctx(), 30.0)], state)
    return leased


def _fail(state: TaskState, error_class: str, context: Context | None = None,
          retry_after_s: float | None = None) -> Any:
    command = FailTask.model_validate({"task_id": "t1", "worker_id": "w1",
                                       "lease_epoch": state.lease_epoch,
                                       "error_class": error_class,
                                       "retry_after_s": retry_after_s})
    (event,) = decide(state, command, context or Context(now=NOW, facts=Facts(
        fallbacks=CHAIN)))
    return event


def test_the_table_names_every_error_class() -> None:
    assert {c: s.name for c, s in DEFAULT_RECOVERY.rows()} == EXPECTED
    assert set(EXPECTED) == set(ERROR_CLASSES)


@pytest.mark.parametrize("error_class", [c for c in ERROR_CLASSES if c != "lease_expired"])
def test_each_reported_class_gets_its_strategy(error_class: str) -> None:
    """Retrying strategies schedule a retry tagged with the strategy; the rest fail."""
    event = _fail(_leased(), error_class)
    strategy = EXPECTED[error_class]
    assert event.strategy == strategy
    if strategy in ("fail_fast", "escalate"):
        assert isinstance(event, TaskFailed)
        return
    assert isinstance(event, TaskRetryScheduled)
    expected = {"backoff": None, "fallback": RetryInstruction(model="m-b"),
                "truncate": RetryInstruction(model="m-a", truncate=True)}[strategy]
    assert event.instruction == expected


def test_a_lapsed_lease_backs_off_as_lease_expired() -> None:
    state = _leased()
    assert state.lease_expires_at is not None
    (event,) = expire_lease(state, ctx(now=state.lease_expires_at + timedelta(seconds=1)))
    assert isinstance(event, TaskRetryScheduled)
    assert (event.error_class, event.strategy, event.instruction) == (
        "lease_expired", "backoff", None)


@pytest.mark.parametrize("error_class", ["rate_limit", "timeout", "server_error", "network"])
def test_each_class_backs_off_with_its_own_cap(error_class: str) -> None:
    strategy = DEFAULT_RECOVERY.of(error_class)
    delays = [jittered_backoff_s(f"t{i}", 30, strategy) for i in range(300)]
    assert max(delays) < strategy.cap_s
    assert max(delays) > 0.9 * strategy.cap_s


def test_rate_limit_waits_at_least_retry_after() -> None:
    event = _fail(_leased(), "rate_limit", retry_after_s=42.0)
    assert event.retry_at == NOW + timedelta(seconds=42.0)


def test_the_lease_after_a_retry_carries_the_instruction() -> None:
    state: TaskState = fold("task", [_fail(_leased(), "context_overflow")], _leased())
    leased = lease(state, "w2", ctx(now=NOW + timedelta(seconds=1)), 30.0)
    assert isinstance(leased, TaskLeased)
    assert leased.instruction == RetryInstruction(model="m-a", truncate=True)


def test_fallback_walks_the_chain_then_stays_on_its_last_model() -> None:
    state = _leased(max_attempts=5)
    models = []
    for _ in range(3):
        failed = _fail(state, "server_error")
        models.append(failed.instruction.model)
        state = fold("task", [failed], state)
        state = fold("task", [lease(state, "w1", ctx(now=failed.retry_at), 30.0)], state)
    assert models == ["m-b", "m-c", "m-c"]


def test_fallback_without_a_model_backs_off_without_an_instruction() -> None:
    event = _fail(_leased(model=None), "server_error")
    assert isinstance(event, TaskRetryScheduled)
    assert event.instruction is None


def test_the_last_attempt_fails_whatever_the_strategy() -> None:
    event = _fail(_leased(max_attempts=1), "rate_limit")
    assert isinstance(event, TaskFailed)
    assert event.strategy == "backoff"


def test_configuration_overrides_a_class() -> None:
    table = DEFAULT_RECOVERY.overridden({"auth": {"strategy": "backoff", "base_s": 0},
                                         "rate_limit": {"base_s": 7, "cap_s": 7, "factor": 1}})
    assert table.of("auth") == Strategy("backoff", 0.0, 1.0, 0.0)
    assert table.of("rate_limit") == Strategy("backoff", 7.0, 1.0, 7.0)
    event = _fail(_leased(), "auth", Context(now=NOW, recovery=table))
    assert isinstance(event, TaskRetryScheduled)
    assert event.retry_at == NOW


@pytest.mark.parametrize("overrides", [{"nope": {}}, {"auth": {"strategy": "pray"}},
                                       {"auth": {"base": 1}}, {"auth": {"base_s": -1}},
                                       {"auth": {"cap_s": "x"}}])
def test_a_bad_override_is_refused(overrides: dict[str, dict[str, object]]) -> None:
    with pytest.raises(ValueError, match=r"recovery|error class"):
        DEFAULT_RECOVERY.overridden(overrides)


def test_next_model_follows_the_chain() -> None:
    assert next_model("a", None, ["b", "c"]) == "b"
    assert next_model("a", "b", ["b", "c"]) == "c"
    assert next_model("a", "c", ["b", "c"]) is None
    assert next_model(None, None, ["b"]) is None


def test_a_plan_keeps_an_earlier_fallback_on_backoff() -> None:
    current = RetryInstruction(model="m-b")
    plan = plan_recovery(DEFAULT_RECOVERY, "timeout", "t1", 2, True, model="m-a",
                         current=current, fallbacks=CHAIN)
    assert (plan.strategy.name, plan.instruction) == ("backoff", current)


def test_runlog_recovery_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.errors import ConfigError
    from services.settings import load_settings

    monkeypatch.setenv("RUNLOG_RECOVERY", '{"auth": {"strategy": "backoff", "base_s": 3}}')
    table = DEFAULT_RECOVERY.overridden(load_settings().recovery)
    assert table.of("auth") == Strategy("backoff", 3.0, 1.0, 0.0)
    monkeypatch.setenv("RUNLOG_RECOVERY", '{"auth": {"strategy": "pray"}}')
    with pytest.raises(ConfigError, match="RUNLOG_RECOVERY"):
        load_settings()
