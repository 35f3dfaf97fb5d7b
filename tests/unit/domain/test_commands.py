"""The command models: strict, bounded, with subject-safe ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from events.base import JSON_OBJECT_MAX_CHARS
from events.commands import COMMANDS
from events.commands.breaker import RecordBreakerOutcome
from events.commands.model import RegisterModel
from events.commands.run import CreateRun
from events.commands.task import ClaimTask, FailTask, SubmitTask
from events.commands.worker import RegisterWorker
from events.ids import model_aggregate_id

SUBMIT = {"run_id": "r1", "kind": "llm.chat"}
PRICE = {"model": "gemini-2.5-pro", "provider": "google", "input_usd_per_mtok": 1.25,
         "output_usd_per_mtok": 10}


def _parse(cls: type[Any], body: dict[str, Any]) -> Any:
    return cls.model_validate_json(json.dumps(body))


def test_every_subject_is_aggregate_dot_action() -> None:
    for subject, cls in COMMANDS.items():
        assert subject == cls.subject
        assert subject.count(".") == 1


def test_submit_defaults() -> None:
    task = _parse(SubmitTask, SUBMIT)
    assert (task.priority, task.max_attempts, task.payload, task.task_id) == (5, 3, {}, None)


@pytest.mark.parametrize("change", [
    {"surprise": 1},
    {"priority": 10},
    {"priority": -1},
    {"priority": "5"},
    {"max_attempts": 0},
    {"max_attempts": 101},
    {"task_id": "a.b"},
    {"task_id": ""},
    {"task_id": "x" * 129},
    {"run_id": "r 1"},
    {"kind": ""},
    {"kind": "has space"},
    {"payload": []},
    {"payload": {"blob": "x" * JSON_OBJECT_MAX_CHARS}},
    {"depends_on": [f"t{i}" for i in range(65)]},
    {"workstream_id": "w>"},
])
def test_submit_rejects(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _parse(SubmitTask, SUBMIT | change)


def test_payload_just_under_the_limit_is_accepted() -> None:
    blob = "x" * (JSON_OBJECT_MAX_CHARS - len('{"blob":""}'))
    assert _parse(SubmitTask, SUBMIT | {"payload": {"blob": blob}}).payload["blob"] == blob


def test_fail_rejects_the_internal_lease_expired_class() -> None:
    body = {"task_id": "t1", "worker_id": "w1", "lease_epoch": 1, "error_class": "lease_expired"}
    with pytest.raises(ValidationError):
        _parse(FailTask, body)
    assert _parse(FailTask, body | {"error_class": "rate_limit"}).error_class == "rate_limit"


@pytest.mark.parametrize("epoch", [0, -1, True, "1"])
def test_fail_rejects_bad_epochs(epoch: object) -> None:
    with pytest.raises(ValidationError):
        _parse(FailTask, {"task_id": "t1", "worker_id": "w1", "lease_epoch": epoch,
                          "error_class": "timeout"})


def test_claim_targets_the_worker() -> None:
    claim = _parse(ClaimTask, {"worker_id": "w1", "kinds": ["llm.chat"]})
    assert claim.target_id() == "w1"


@pytest.mark.parametrize("capacity", [0, 1001])
def test_worker_capacity_is_bounded(capacity: int) -> None:
    with pytest.raises(ValidationError):
        _parse(RegisterWorker, {"worker_id": "w1", "capacity": capacity})


def test_breaker_outcome_is_success_or_failure() -> None:
    with pytest.raises(ValidationError):
        _parse(RecordBreakerOutcome, {"breaker_id": "b1", "outcome": "maybe"})


def test_model_register_targets_the_escaped_name() -> None:
    command = _parse(RegisterModel, PRICE)
    assert command.target_id() == model_aggregate_id("gemini-2.5-pro") == "gemini-2_2e5-pro"
    assert command.effective_from is None


def test_model_register_reads_a_zoneless_date_as_utc() -> None:
    command = _parse(RegisterModel, PRICE | {"effective_from": "2025-01-01T00:00:00"})
    assert command.effective_from == datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("change", [
    {"input_usd_per_mtok": -0.01},
    {"output_usd_per_mtok": 1e9},
    {"model": ""},
    {"model": "é" * 60},
    {"provider": ""},
    {"effective_from": "yesterday"},
])
def test_model_register_rejects(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _parse(RegisterModel, PRICE | change)


def test_run_create_takes_a_budget_id() -> None:
    assert _parse(CreateRun, {"name": "n", "budget_id": "team-a"}).budget_id == "team-a"


@pytest.mark.parametrize("payload", [{"x": float("nan")}, {"x": object()}])
def test_payload_must_be_json(payload: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="not a JSON object"):
        SubmitTask.model_validate(SUBMIT | {"payload": payload})
