"""Under a fast steady stream the live projector pauses after each batch (``busy_share``)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from projections import ReadModelDb
from projections.runtime import Projector, ProjectorConfig
from services.store import InMemoryEventStore


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses the projector asks for, instead of taking them."""
    asked: list[float] = []

    async def record(seconds: float) -> None:
        asked.append(seconds)

    monkeypatch.setattr("projections.runtime.asyncio.sleep", record)
    return asked


def _projector(db_path: Path, last_cost_s: float, ended_s_ago: float,
               config: ProjectorConfig | None = None, arrival_rate: float = 3000.0) -> Projector:
    projector = Projector(InMemoryEventStore(), ReadModelDb.open_writer(db_path), config)
    projector._last_cost_s = last_cost_s
    projector._arrival_rate = arrival_rate
    projector._last_end = time.perf_counter() - ended_s_ago
    return projector


@pytest.mark.parametrize(("last_cost_s", "config", "least", "most"), [
    # Right after a batch: a pause as long as it took, less the moments since it ended.
    (0.010, None, 0.0, 0.010),
    # A long batch: the pause is capped.
    (2.0, ProjectorConfig(max_pause_s=0.025), 0.0, 0.025),
    # A smaller share pauses longer: 0.004 * (1 / 0.25 - 1) = 0.012.
    (0.004, ProjectorConfig(busy_share=0.25), 0.004, 0.012),
])
async def test_a_batch_right_after_another_waits_for_its_share(
        db_path: Path, pauses: list[float], last_cost_s: float,
        config: ProjectorConfig | None, least: float, most: float) -> None:
    await _projector(db_path, last_cost_s, ended_s_ago=0.0, config=config)._pace()
    assert len(pauses) == 1
    assert least < pauses[0] <= most


@pytest.mark.parametrize(("ended_s_ago", "config", "arrival_rate"), [
    (1.0, None, 3000.0),  # an event after a quiet spell
    (0.0, ProjectorConfig(busy_share=1.0), 3000.0),  # no pacing asked for
    (0.0, None, 1000.0),  # a stream slow enough for batches to follow at once
    (0.0, ProjectorConfig(pause_from_rate=10.0), 9.9),
])
async def test_no_pause_after_a_quiet_spell_a_slow_stream_or_at_a_share_of_one(
        db_path: Path, pauses: list[float], ended_s_ago: float,
        config: ProjectorConfig | None, arrival_rate: float) -> None:
    await _projector(db_path, last_cost_s=0.010, ended_s_ago=ended_s_ago, config=config,
                     arrival_rate=arrival_rate)._pace()
    assert pauses == []


async def test_the_rate_that_earns_a_pause_is_reached_at_its_threshold(
        db_path: Path, pauses: list[float]) -> None:
    projector = _projector(db_path, last_cost_s=0.010, ended_s_ago=0.0,
                           config=ProjectorConfig(pause_from_rate=10.0), arrival_rate=10.0)
    await projector._pace()
    assert len(pauses) == 1


def test_the_arrival_rate_follows_the_batches_and_does_not_grow_with_the_pause(
        db_path: Path) -> None:
    """Twice the window with twice the events (what a pause does) reads the same rate."""
    projector = _projector(db_path, last_cost_s=0.0, ended_s_ago=0.0, arrival_rate=0.0)
    projector._last_start = 100.0
    now = 100.0
    for _ in range(200):  # 30 events every 10 ms, for 2 s
        now += 0.01
        projector._track_arrivals(30, now)
    assert projector._arrival_rate == pytest.approx(3000.0, rel=1e-3)
    for _ in range(100):  # paused: 60 events every 20 ms
        now += 0.02
        projector._track_arrivals(60, now)
    assert projector._arrival_rate == pytest.approx(3000.0, rel=1e-3)
    projector._track_arrivals(1, now + 5.0)  # one event after a quiet spell
    assert projector._arrival_rate < ProjectorConfig().pause_from_rate
