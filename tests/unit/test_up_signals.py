"""`runlog up` stops on a signal whether or not its start-up has finished."""

from __future__ import annotations

import asyncio

from services.cli.up import until_stopped


async def test_a_signal_during_a_stuck_start_up_cancels_it() -> None:
    stop, started, cleaned_up = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def stuck_start_up() -> None:
        try:
            await asyncio.Event().wait()  # start-up waiting on something that never comes
        finally:
            cleaned_up.set()

    serving = asyncio.create_task(stuck_start_up())
    asyncio.get_running_loop().call_later(0.05, stop.set)
    await asyncio.wait_for(until_stopped(serving, stop, started), timeout=5)
    assert serving.cancelled()
    assert cleaned_up.is_set()


async def test_a_signal_after_start_up_lets_the_service_stop_itself() -> None:
    stop, started = asyncio.Event(), asyncio.Event()
    stopped_cleanly = asyncio.Event()

    async def service() -> None:
        started.set()
        await stop.wait()
        stopped_cleanly.set()

    serving = asyncio.create_task(service())
    asyncio.get_running_loop().call_later(0.05, stop.set)
    await asyncio.wait_for(until_stopped(serving, stop, started), timeout=5)
    assert not serving.cancelled()
    assert stopped_cleanly.is_set()
