"""A client waiting for the service's answer learns at once that NATS went away."""

from __future__ import annotations

import asyncio
import io
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from projections import QueryUnavailable, ReadSide, SqlLimits, run_sql_async, stream_sql_async
from services.store import JetStreamEventStore
from tests.support.nats_process import NatsProcess, free_port
from tests.support.nats_server import wait_until

pytestmark = [pytest.mark.nats, pytest.mark.slow]

SLOW = "SELECT sleep_ms(120000) AS slept"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsProcess]:
    """A nats-server of this test's own: the test kills it."""
    port = free_port()
    config = tmp_path / "server.conf"
    config.write_text(f"listen: 127.0.0.1:{port}\n"
                      f"jetstream {{ store_dir: {json.dumps(str(tmp_path / 'js'))} }}\n")
    with NatsProcess(config, port) as process:
        yield process


async def running(read_side: ReadSide) -> int:
    return read_side.sql.running


@pytest.mark.parametrize("streamed", [False, True], ids=["reply", "stream"])
async def test_a_lost_connection_ends_the_wait_in_one_line(
        server: NatsProcess, tmp_path: Path, streamed: bool) -> None:
    nc = await nats.connect(server.url, allow_reconnect=False)
    store = JetStreamEventStore(nc)
    await store.ensure_stream()
    db_path = tmp_path / "runlog.duckdb"
    read_side = ReadSide(store, db_path, limits=SqlLimits(max_timeout_s=300))
    await read_side.start()
    try:
        waiting: asyncio.Future[object] = asyncio.ensure_future(
            stream_sql_async(SLOW, io.StringIO(), "csv", db_path=db_path, nats_url=server.url,
                             timeout_s=200) if streamed else
            run_sql_async(SLOW, db_path=db_path, nats_url=server.url, timeout_s=200))
        await wait_until(lambda: running(read_side), lambda n: n == 1)
        server.stop(signal.SIGKILL)
        with pytest.raises(QueryUnavailable, match=r"was lost before the answer came"):
            await asyncio.wait_for(waiting, 30)  # not the query's 200 s budget
    finally:
        await read_side.stop()
        await nc.close()
