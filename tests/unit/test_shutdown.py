"""The shutdown sequence: ordered, bounded, and every failure logged by name."""

from __future__ import annotations

import asyncio
import logging

import pytest

from services.shutdown import StopStep, cancel_within, describe_error, run_shutdown


async def _forever() -> None:
    await asyncio.Event().wait()


async def test_a_task_whose_cleanup_hangs_is_cancelled_again_until_it_ends() -> None:
    cleaned = asyncio.Event()

    async def stubborn() -> None:
        try:
            await _forever()
        finally:
            await _forever()  # e.g. closing a subscription on a dead connection
            cleaned.set()

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_within([task], 5.0), timeout=10)
    assert task.cancelled()
    assert not cleaned.is_set()


async def test_a_task_that_ignores_cancellation_is_named_and_left_behind(
        caplog: pytest.LogCaptureFixture) -> None:
    async def deaf() -> None:
        while True:
            try:
                await _forever()
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(deaf(), name="deaf policy")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING):
        await asyncio.wait_for(cancel_within([task], 0.3), timeout=10)
    assert not task.done()
    assert "deaf policy still running" in caplog.text
    task.get_coro().close()


async def test_steps_run_in_order_past_a_hang_and_a_failure(
        caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []

    async def hangs() -> None:
        ran.append("hangs")
        await _forever()

    async def fails() -> None:
        ran.append("fails")
        raise TimeoutError

    async def last() -> None:
        ran.append("last")

    with caplog.at_level(logging.WARNING):
        await asyncio.wait_for(run_shutdown([StopStep("stuck step", hangs, 0.2),
                                             StopStep("failing step", fails, 1.0),
                                             StopStep("nats", last, 1.0)]), timeout=10)
    assert ran == ["hangs", "fails", "last"]
    assert "stuck step did not finish within 0.2 s" in caplog.text
    assert "failing step failed: TimeoutError" in caplog.text


def test_an_error_without_a_message_is_described_by_its_type() -> None:
    assert describe_error(TimeoutError()) == "TimeoutError"
    assert describe_error(ValueError("bad")) == "ValueError: bad"
    group = ExceptionGroup("Failed to stop subscribers", [OSError("gone"), TimeoutError()])
    assert describe_error(group) == "ExceptionGroup: OSError: gone; TimeoutError"
