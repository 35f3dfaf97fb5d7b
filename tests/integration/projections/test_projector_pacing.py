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
               config: ProjectorConfig | None = None, last_size: int = 500) -> Projector:
    projector = Projector(InMemoryEventStore(), ReadModelDb.open_writer(db_path), config)
    projector._last_cost_s = last_cost_s
    projector._last_size = last_size
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


@pytest.mark.parametrize(("ended_s_ago", "config", "last_size"), [
    (1.0, None, 500),  # an event after a quiet spell
    (0.0, ProjectorConfig(busy_share=1.0), 500),  # no pacing asked for
    (0.0, None, 99),  # a stream slow enough for batches to follow at once
    (0.0, ProjectorConfig(pause_from_events=10), 9),
])
async def test_no_pause_after_a_quiet_spell_a_small_batch_or_at_a_share_of_one(
        db_path: Path, pauses: list[float], ended_s_ago: float,
        config: ProjectorConfig | None, last_size: int) -> None:
    await _projector(db_path, last_cost_s=0.010, ended_s_ago=ended_s_ago, config=config,
                     last_size=last_size)._pace()
    assert pauses == []


async def test_the_batch_size_that_earns_a_pause_is_counted_from_the_last_batch(
        db_path: Path, pauses: list[float]) -> None:
    projector = _projector(db_path, last_cost_s=0.010, ended_s_ago=0.0,
                           config=ProjectorConfig(pause_from_events=10), last_size=10)
    await projector._pace()
    assert len(pauses) == 1
