"""A command leaves nothing for the garbage collector: its objects go when it is answered.

Objects caught in a reference cycle outlive their command until a collection finds
them; under load those collections took 30-65 ms each in ``runlog up``, stalls every
command and the read side then waited out.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from services.command_service.unit_of_work import UnitOfWork
from tests.support.service_client import InProcessClient


@pytest.fixture
def collector_off() -> Iterator[None]:
    """No collection runs during the test unless it asks for one."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def units_of_work_awaiting_collection() -> int:
    """Units of work alive only through reference cycles (collected and counted here)."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return sum(isinstance(o, UnitOfWork) for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def test_usage_records_and_cache_invalidations_leave_no_cycle_behind(
        client: InProcessClient, collector_off: None) -> None:
    await client.running_run("r1")
    units_of_work_awaiting_collection()  # whatever starting the service left
    for n in range(20):
        await client.ok("usage.record", {"run_id": "r1", "model": "gpt-4o", "tokens_in": 100 + n,
                                         "tokens_out": 10})
        await client.ok("cache.invalidate", {"cache_key": f"k{n}"}, "invalidated")
    assert units_of_work_awaiting_collection() == 0
