"""A replay reads and applies in two processes only when a CPU is idle and the log is long."""

from __future__ import annotations

import os

import pytest

from projections.replay import TWO_PROCESSES_FROM, worth_two_processes


@pytest.mark.parametrize(("cpus", "load", "events", "two"), [
    (2, 0.3, TWO_PROCESSES_FROM, True),
    (2, 0.3, TWO_PROCESSES_FROM - 1, False),  # too short to pay for a second start
    (2, 1.5, 10 * TWO_PROCESSES_FROM, False),  # no CPU idle: the halves would take turns
    (1, 0.0, 10 * TWO_PROCESSES_FROM, False),
    (8, 6.5, TWO_PROCESSES_FROM, True),
])
def test_two_processes_need_an_idle_cpu_and_a_long_log(
        monkeypatch: pytest.MonkeyPatch, cpus: int, load: float, events: int,
        two: bool) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert worth_two_processes(events) is two
