"""The log checker of the limit tests catches a log that breaks a limit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.limits import check_limits

NOW = datetime(2026, 1, 1, tzinfo=UTC).isoformat()


def _event(seq: int, task_id: str, event_type: str, to_state: str, **data: Any) -> dict[str, Any]:
    return {"seq": seq, "type": event_type, "schema_version": 1, "event_id": f"e{seq}",
            "aggregate": "task", "aggregate_id": task_id, "version": 1, "occurred_at": NOW,
            "command_id": f"c{seq}", "from_state": None, "to_state": to_state,
            "task_id": task_id, **data}


def _submitted(seq: int, task_id: str, **data: Any) -> dict[str, Any]:
    return _event(seq, task_id, "TaskSubmitted", "queued", run_id="r1", kind="llm", priority=5,
                  max_attempts=3, submitted_at=NOW, **data)


def _leased(seq: int, task_id: str, worker_id: str) -> dict[str, Any]:
    return _event(seq, task_id, "TaskLeased", "leased", worker_id=worker_id, lease_epoch=1,
                  lease_expires_at=NOW, lease_ttl_s=30.0, attempt=1)


def test_two_live_leases_on_one_resource_are_caught() -> None:
    events = [_submitted(1, "a", resource="repo"), _submitted(2, "b", resource="repo"),
              _leased(3, "a", "w1"), _leased(4, "b", "w2")]
    with pytest.raises(AssertionError):
        check_limits(events)


def test_a_run_over_its_limit_is_caught_and_one_within_passes() -> None:
    events = [_submitted(1, "a"), _submitted(2, "b"), _leased(3, "a", "w1"),
              _leased(4, "b", "w2")]
    assert check_limits(events, by_run={"r1": 2}).by_run["r1"] == 2
    with pytest.raises(AssertionError):
        check_limits(events, by_run={"r1": 1})
