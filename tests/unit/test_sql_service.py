"""The SQL service's stop is bounded: a job that ignores its interrupt cannot hold it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import pytest

from projections import QueryInterrupted, SqlLimits
from projections.query import QueryWatch
from projections.sql_service import SqlService
from projections.workers import DaemonPool
from tests.support.nats_server import wait_until


async def running_now(service: SqlService) -> int:
    """How many jobs run, as an awaitable probe."""
    return service.running


async def test_a_stop_gives_up_on_a_job_that_ignores_its_interrupt(
        caplog: pytest.LogCaptureFixture) -> None:
    service = SqlService(SqlLimits(workers=2))
    service.start()
    release = threading.Event()
    interrupted: list[bool] = []

    def stubborn(watch: QueryWatch) -> str:
        release.wait(30)  # no DuckDB call that would notice the interrupt
        interrupted.append(watch.fired)
        return "finished"

    def obedient(watch: QueryWatch) -> str:
        while not watch.fired:
            threading.Event().wait(0.01)
        return "stopped when told"

    running = [asyncio.create_task(service.run(client, 60, job))
               for client, job in (("a", stubborn), ("b", obedient))]
    await wait_until(lambda: running_now(service), lambda n: n == 2)
    left = await service.stop(wait_s=0.2)
    try:
        assert left == 1  # the obedient one ended; the stubborn one was left behind
        assert not release.is_set()  # stop returned while the stubborn job still ran
        outcomes = await asyncio.gather(*running, return_exceptions=True)
        assert isinstance(outcomes[0], QueryInterrupted)
        assert "the service is stopping" in str(outcomes[0])
        assert outcomes[1] == "stopped when told"
        assert "1 query did not stop within 0.2 s" in caplog.text
    finally:
        release.set()
    for thread in threading.enumerate():
        if thread.name.startswith("runlog-sql"):
            await asyncio.to_thread(thread.join, 5)
    assert interrupted == [True]  # it was told, it just did not look


async def test_a_stop_with_nothing_running_returns_at_once() -> None:
    service = SqlService(SqlLimits())
    service.start()
    assert await service.run("a", 5, lambda watch: 42) == 42
    assert await service.stop(wait_s=30) == 0


STUBBORN_PROCESS = """
import asyncio, threading
from projections import SqlLimits
from projections.sql_service import SqlService
from projections.workers import DaemonPool

async def main():
    service = SqlService(SqlLimits())
    service.start()
    never = threading.Event()
    running = asyncio.create_task(service.run("a", 600, lambda watch: never.wait(600)))
    while service.running < 1:
        await asyncio.sleep(0.01)
    print("left", await service.stop(wait_s=0.2), flush=True)
    print(type((await asyncio.gather(running, return_exceptions=True))[0]).__name__)

asyncio.run(main())
"""


def test_a_process_exits_without_waiting_for_a_query_that_ignores_its_interrupt() -> None:
    done = subprocess.run([sys.executable, "-c", STUBBORN_PROCESS], capture_output=True,
                          text=True, timeout=60, check=False)  # the job alone would take 600 s
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["left", "1", "QueryInterrupted"]


def test_the_pool_runs_jobs_and_refuses_them_once_shut_down() -> None:
    pool = DaemonPool(2, "test-pool")
    assert pool.submit(lambda x: x * 2, 21).result(5) == 42
    failing = pool.submit(int, "not a number")
    with pytest.raises(ValueError, match="invalid literal"):
        failing.result(5)
    assert all(thread.daemon for thread in threading.enumerate()
               if thread.name.startswith("test-pool"))
    pool.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(int, "1")
