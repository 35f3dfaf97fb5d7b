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


async def test_the_cpu_a_process_of_the_replay_takes_in_the_sample_counts_as_idle(
        monkeypatch: pytest.MonkeyPatch) -> None:
    times = iter([(1.0, 0.5), (1.1, 0.5)])  # its applier used 0.1 s of CPU in the sample

    class Applier:
        def __init__(self, pid: int) -> None:
            assert pid == 4321

        def cpu_times(self) -> object:
            user, system = next(times)
            return type("Times", (), {"user": user, "system": system})()

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: 75.0)
    monkeypatch.setattr(psutil, "Process", Applier)
    assert await idle_cpus(0.2, beside=4321) == pytest.approx(0.5 + 0.5)


async def test_a_process_gone_before_the_sample_ends_takes_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def gone(pid: int) -> object:
        raise psutil.NoSuchProcess(pid)

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: 50.0)
    monkeypatch.setattr(psutil, "Process", gone)
    assert await idle_cpus(0.05, beside=99) == pytest.approx(2.0)


async def test_idle_cpus_never_exceed_the_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    times = iter([(0.0, 0.0), (5.0, 0.0)])  # ticks counted at the edges of the sample
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: 10.0)
    monkeypatch.setattr(psutil, "Process", lambda pid: type("P", (), {
        "cpu_times": lambda self: type("T", (), dict(zip(("user", "system"), next(times),
                                                          strict=True)))()})())
    assert await idle_cpus(0.2, beside=1) == 2.0
