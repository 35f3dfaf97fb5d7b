"""The read side's process on its own: it serves, and stops when its parent says so or is gone."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import duckdb
import nats
import pytest

from services.embedded_nats import EmbeddedNats
from services.read_side import ChildStatus
from services.settings import Settings
from services.store import JetStreamEventStore

pytestmark = [pytest.mark.nats, pytest.mark.slow]


@pytest.fixture(scope="module")
def own_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server of its own: the child uses the default subjects, which other tests share."""
    with EmbeddedNats(Path(tmp_path_factory.mktemp("child-nats"))) as server:
        yield server.url


@pytest.fixture
async def url(own_nats: str) -> AsyncIterator[str]:
    nc = await nats.connect(own_nats)
    store = JetStreamEventStore(nc)
    await store.ensure_stream()
    yield own_nats
    await store.js.delete_stream(store.stream)
    await nc.close()


def spawn(data_dir: Path, url: str, parent: int) -> subprocess.Popen[bytes]:
    child = subprocess.Popen(
        [sys.executable, "-m", "services.read_side_child", str(data_dir)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None
    settings = Settings(data_dir=data_dir, http_addr="off")
    child.stdin.write(json.dumps({"url": url, "parent": parent,
                                  "settings": settings.model_dump(mode="json")}).encode()
                      + b"\n")
    child.stdin.flush()
    return child


def ready_line(child: subprocess.Popen[bytes]) -> ChildStatus:
    assert child.stdout is not None
    while line := child.stdout.readline():
        status = ChildStatus.from_line(line)
        if status is not None and status.ready:
            return status
    raise AssertionError(f"the child exited with {child.wait()} before it served")


def test_a_child_whose_parent_is_already_gone_exits_before_touching_anything(
        tmp_path: Path) -> None:
    child = spawn(tmp_path, "nats://127.0.0.1:1", parent=os.getpid() + 10_000_000)
    assert child.wait(timeout=30) == 3
    assert not (tmp_path / "runlog.duckdb").exists()


@pytest.mark.parametrize("how", ["stdin closed", "SIGTERM"])
async def test_the_child_serves_then_stops_cleanly_when_told(
        tmp_path: Path, url: str, how: str) -> None:
    child = spawn(tmp_path, url, parent=os.getpid())
    try:
        status = await asyncio.to_thread(ready_line, child)
        assert status.pid == child.pid
        assert child.stdin is not None
        if how == "SIGTERM":
            child.send_signal(signal.SIGTERM)
        else:
            child.stdin.close()
        assert await asyncio.to_thread(child.wait, 15) == 0
    finally:
        child.kill()
        child.wait()
    con = duckdb.connect(str(tmp_path / "runlog.duckdb"), read_only=True)
    try:
        stopped = con.execute("SELECT pid, stopped_at IS NOT NULL FROM service_liveness"
                              ).fetchall()
    finally:
        con.close()
    assert stopped == [(child.pid, True)]  # it recorded its clean stop in the file
