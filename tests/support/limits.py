"""Checking a log against the concurrency limits: never more live leases than allowed.

The log is read in order, as any reader would; each ``TaskLeased`` must fit every limit
given the leases live at that point, and at the end a board folded from the log must
count exactly the live leases it holds (occupancy is derived, never kept).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from events.codec import CODEC
from services.domain.claims import TaskBoard
from services.domain.registry import TASK
from services.domain.task import TaskState

__all__ = ["LimitsSeen", "check_limits"]

_HELD = frozenset({"leased", "running"})


@dataclass
class LimitsSeen:
    """The highest concurrency the log reached in each scope."""

    total: int = 0
    by_run: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    by_key: Counter[str] = field(default_factory=Counter)
    by_resource: Counter[str] = field(default_factory=Counter)
    by_worker: Counter[str] = field(default_factory=Counter)
    leases: int = 0


def check_limits(events: Iterable[Mapping[str, Any]], *, max_running: int | None = None,
                 by_run: Mapping[str, int] | None = None,
                 by_kind: Mapping[str, int] | None = None,
                 capacity: Mapping[str, int] | None = None) -> LimitsSeen:
    """Asserts no scope ever held more leases than its limit; returns the peaks."""
    states: dict[str, TaskState] = {}
    live: dict[str, TaskState] = {}
    peaks = LimitsSeen()
    board = TaskBoard()
    for event in events:
        if event.get("aggregate") != "task":
            continue
        task_id = str(event["aggregate_id"])
        typed = CODEC.typed(CODEC.decode(_wire(event)))
        state = TASK.evolve(states.get(task_id), typed)
        states[task_id] = state
        board.put(state, int(event["seq"]))
        live.pop(task_id, None)
        if state.state in _HELD:
            live[task_id] = state
        if event["type"] == "TaskLeased":
            peaks.leases += 1
            _check(peaks, live.values(), max_running, by_run or {}, by_kind or {},
                   capacity or {})
    recount = board.recount()
    assert board.occupancy.counts() == recount.counts(), (board.occupancy, recount)
    assert recount.total == len(live), (recount.total, len(live))
    return peaks


def _check(peaks: LimitsSeen, live: Iterable[TaskState], max_running: int | None,
           by_run: Mapping[str, int], by_kind: Mapping[str, int],
           capacity: Mapping[str, int]) -> None:
    held = list(live)
    counts = {
        "run": Counter(t.run_id for t in held), "kind": Counter(t.kind for t in held),
        "key": Counter(t.concurrency_key for t in held if t.concurrency_key),
        "resource": Counter(t.resource for t in held if t.resource),
        "worker": Counter(t.worker_id for t in held if t.worker_id),
    }
    peaks.total = max(peaks.total, len(held))
    for name, scope in (("run", peaks.by_run), ("kind", peaks.by_kind), ("key", peaks.by_key),
                        ("resource", peaks.by_resource), ("worker", peaks.by_worker)):
        for key, n in counts[name].items():
            scope[key] = max(scope[key], n)
    assert max_running is None or len(held) <= max_running, len(held)
    for run_id, n in counts["run"].items():
        assert n <= by_run.get(run_id, n), (run_id, n)
    for kind, n in counts["kind"].items():
        assert n <= by_kind.get(kind, n), (kind, n)
    for task in held:
        if task.concurrency_key and task.max_concurrency:
            assert counts["key"][task.concurrency_key] <= task.max_concurrency, task
    assert all(n == 1 for n in counts["resource"].values()), counts["resource"]
    for worker_id, n in counts["worker"].items():
        assert n <= capacity.get(worker_id, n), (worker_id, n)


def _wire(event: Mapping[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in event.items() if k != "seq"}).encode()
