"""Under a steady stream the live projector leaves a pause after each batch (``busy_share``)."""

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
               config: ProjectorConfig | None = None) -> Projector:
    projector = Projector(InMemoryEventStore(), ReadModelDb.open_writer(db_path), config)
    projector._last_cost_s = last_cost_s
    projector._last_end = time.perf_counter() - ended_s_ago
    return projector


async def test_a_batch_right_after_another_waits_as_long_as_the_last_took(
        db_path: Path, pauses: list[float]) -> None:
    await _projector(db_path, last_cost_s=0.010, ended_s_ago=0.0)._pace()
    assert len(pauses) == 1
    assert 0.0 < pauses[0] <= 0.010


async def test_an_event_after_a_quiet_spell_does_not_wait(
        db_path: Path, pauses: list[float]) -> None:
    await _projector(db_path, last_cost_s=0.010, ended_s_ago=1.0)._pace()
    assert pauses == []


async def test_the_pause_is_capped(db_path: Path, pauses: list[float]) -> None:
    await _projector(db_path, last_cost_s=2.0, ended_s_ago=0.0,
                     config=ProjectorConfig(max_pause_s=0.025))._pace()
    assert len(pauses) == 1
    assert 0.0 < pauses[0] <= 0.025


async def test_a_busy_share_of_one_never_pauses(db_path: Path, pauses: list[float]) -> None:
    await _projector(db_path, last_cost_s=0.010, ended_s_ago=0.0,
                     config=ProjectorConfig(busy_share=1.0))._pace()
    assert pauses == []


async def test_a_smaller_share_pauses_longer(db_path: Path, pauses: list[float]) -> None:
    await _projector(db_path, last_cost_s=0.004, ended_s_ago=0.0,
                     config=ProjectorConfig(busy_share=0.25))._pace()
    # 0.004 * (1 / 0.25 - 1) = 0.012, less the moments since the batch ended.
    assert len(pauses) == 1
    assert 0.004 < pauses[0] <= 0.012
