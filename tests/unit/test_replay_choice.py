"""A replay reads and applies in two processes only when a CPU is idle now and the log is long."""

from __future__ import annotations

import os

import psutil
import pytest

from projections.replay import TWO_PROCESSES_FROM, idle_cpus, worth_two_processes


@pytest.mark.parametrize(("cpus", "idle", "events", "two"), [
    (2, 1.7, TWO_PROCESSES_FROM, True),
    (2, 1.7, TWO_PROCESSES_FROM - 1, False),  # too short to pay for a second start
    (2, 0.5, 10 * TWO_PROCESSES_FROM, False),  # no CPU idle: the halves would take turns
    (1, 1.0, 10 * TWO_PROCESSES_FROM, False),
    (8, 1.5, TWO_PROCESSES_FROM, True),
])
def test_two_processes_need_an_idle_cpu_and_a_long_log(
        monkeypatch: pytest.MonkeyPatch, cpus: int, idle: float, events: int,
        two: bool) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    assert worth_two_processes(events, idle) is two


@pytest.mark.parametrize(("cpus", "busy_percent", "idle"), [(2, 25.0, 1.5), (4, 100.0, 0.0),
                                                            (8, 50.0, 4.0)])
async def test_idle_cpus_are_read_from_a_sample_of_the_cpu_time_now(
        monkeypatch: pytest.MonkeyPatch, cpus: int, busy_percent: float, idle: float) -> None:
    sampled: list[float | None] = []

    def cpu_percent(interval: float | None = None) -> float:
        sampled.append(interval)
        return busy_percent

    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    monkeypatch.setattr(psutil, "cpu_percent", cpu_percent)
    assert await idle_cpus(0.05) == pytest.approx(idle)
    assert sampled == [0.05]  # over an interval, not since some earlier call


async def test_idle_cpus_on_this_machine_are_between_none_and_all() -> None:
    assert 0.0 <= await idle_cpus(0.05) <= (os.cpu_count() or 1)
