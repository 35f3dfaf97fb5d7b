"""`runlog up`'s read side in its own process: supervised, restarted after a crash, caught up.

The command service keeps answering while the read side's process is dead; the process
that comes back projects what it missed, and its read models equal a rebuild from the log.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.request
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.aio.client import Client

from projections import build_read_models
from services.embedded_nats import EmbeddedNats
from services.store import JetStreamEventStore
from tests.e2e.cli import instance_info, read_side_children, start_up, stop_up, wait_for_instance
from tests.support.read_side import table_digests

pytestmark = [pytest.mark.nats, pytest.mark.slow]


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def wait_for_new_child(data_dir: Path, old: int, timeout_s: float = 30) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        children = [pid for pid in read_side_children(data_dir) if pid != old]
        if children:
            return children[0]
        time.sleep(0.05)
    raise AssertionError("no new read side process within the deadline")


async def create_runs(nc: Client, prefix: str, count: int) -> int:
    """Creates and starts ``count`` runs through the command subjects; returns the last seq."""
    last = 0
    for index in range(count):
        for subject, body in (("run.create", {"run_id": f"{prefix}{index}", "name": "n"}),
                              ("run.start", {"run_id": f"{prefix}{index}"})):
            msg = await nc.request(f"runlog.cmd.{subject}", json.dumps(body).encode(),
                                   timeout=10)
            reply = json.loads(msg.data)
            assert reply["ok"] is True, reply
            last = max(last, int(reply["seq"]))
    return last


async def query(nc: Client, sql: str, wait_seq: int, timeout_s: float = 30) -> list[list[object]]:
    """Asks the read side, also while its new process is still starting (no responders)."""
    body = json.dumps({"sql": sql, "wait_seq": wait_seq, "wait_timeout_s": timeout_s}).encode()
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            msg = await nc.request("runlog.sql.query", body, timeout=timeout_s + 10)
            break
        except nats.errors.NoRespondersError:
            assert time.monotonic() < deadline, "the read side never answered again"
            await asyncio.sleep(0.1)
    reply = json.loads(msg.data)
    assert reply["ok"] is True, reply
    rows: list[list[object]] = reply["result"]["rows"]
    return rows


async def kill_the_read_side_under_writes(data_dir: Path, url: str) -> int:
    nc = await nats.connect(url)
    try:
        first = await create_runs(nc, "before", 20)
        assert await query(nc, "SELECT count(*) FROM runs", first) == [[20]]
        child = read_side_children(data_dir)[0]
        os.kill(child, signal.SIGKILL)
        # Commands do not wait for the read side: these are written while it is down.
        last = await create_runs(nc, "during", 20)
        wait_for_new_child(data_dir, child)
        assert await query(nc, "SELECT count(*) FROM runs WHERE state = 'running'",
                           last) == [[40]]
        return last
    finally:
        await nc.close()


async def rebuild(data_dir: Path, dest: Path) -> int:
    with EmbeddedNats(data_dir) as server:
        nc = await nats.connect(server.url)
        try:
            result = await build_read_models(JetStreamEventStore(nc), dest)
        finally:
            await nc.close()
    return result.position


def metric(http_url: str, name: str) -> float:
    with urllib.request.urlopen(f"{http_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = [float(line.split()[-1]) for line in text.splitlines()
              if line.startswith(name) and not line.startswith("#")]
    assert values, f"{name} is not in /metrics"
    return values[0]


def test_the_read_side_runs_in_a_child_that_is_restarted_after_kill_9_and_catches_up(
        tmp_path: Path) -> None:
    up = start_up(tmp_path)
    try:
        url = wait_for_instance(tmp_path, up)
        children = read_side_children(tmp_path)
        assert len(children) == 1
        assert parent_of(children[0]) == up.pid  # its own process, under runlog up
        last = asyncio.run(kill_the_read_side_under_writes(tmp_path, url))
        http_url = str(instance_info(tmp_path)["http_url"])
        assert metric(http_url, "runlog_read_side_restarts_total") >= 1
        assert metric(http_url, 'runlog_projector_lag{projector="read_models"}') >= 0
    finally:
        stop_up(up)
    assert up.returncode == 0
    assert read_side_children(tmp_path) == []
    live = tmp_path / "runlog.duckdb"
    assert asyncio.run(rebuild(tmp_path, tmp_path / "rebuilt.duckdb")) >= last
    assert table_digests(live) == table_digests(tmp_path / "rebuilt.duckdb")
