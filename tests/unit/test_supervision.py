"""A supervised task starts again after a failure, and stops when cancelled."""

from __future__ import annotations

import asyncio
import logging

import pytest

from services.supervision import keep_running


async def test_a_failing_run_is_started_again_until_it_returns(
        caplog: pytest.LogCaptureFixture) -> None:
    attempts: list[int] = []

    async def flaky() -> None:
        attempts.append(len(attempts))
        if len(attempts) < 3:
            raise ConnectionError("leader lost")

    with caplog.at_level(logging.WARNING):
        await asyncio.wait_for(keep_running("run end", flaky, first_pause_s=0.01), timeout=10)
    assert attempts == [0, 1, 2]
    assert caplog.text.count("run end stopped: ConnectionError: leader lost") == 2


async def test_a_cancel_stops_it_for_good() -> None:
    runs: list[int] = []

    async def forever() -> None:
        runs.append(1)
        await asyncio.Event().wait()

    task = asyncio.create_task(keep_running("lease expiry", forever, first_pause_s=0.01))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert runs == [1]
