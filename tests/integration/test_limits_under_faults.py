"""Every limit holds through NATS, on two ``runlog up`` replicas, through kill -9 and expiries.

64 claimers (32 workers of capacity 2, two loops each) race for tasks under a global
limit, a run's limit, a kind's limit, a concurrency key and a shared resource. Some
workers vanish holding their task (the lease expires); one replica is killed with
SIGKILL midway and started again. The log is then read in order: no scope ever held more
live leases than its limit, and a board folded from the log counts exactly the live
leases it holds.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from nats.aio.client import Client

from services.settings import Settings
from tests.e2e.cli import runlog_env
from tests.support.limits import check_limits
from tests.support.nats_server import wait_until
from tests.support.service_client import NatsServiceClient, fresh_stream

pytestmark = [pytest.mark.nats, pytest.mark.slow]

WORKERS = 32
MAX_RUNNING = 12
BY_RUN = {"limited": 6}
BY_KIND = {"gpu": 3}
_ABANDONED = frozenset(f"t{n}" for n in range(3, 68, 10))
"""Tasks whose first holder vanishes with them (their lease expires), whoever claims them."""


def _start(data_dir: Path, settings: Settings) -> subprocess.Popen[bytes]:
    env = runlog_env(data_dir) | {"RUNLOG_NATS_URL": str(settings.nats_url),
                                  "RUNLOG_STREAM": settings.stream, "RUNLOG_LEASE_TTL_S": "1",
                                  "RUNLOG_MAX_RUNNING": str(MAX_RUNNING),
                                  "RUNLOG_HTTP_ADDR": "off"}
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "stderr.log").open("ab") as stderr:
        return subprocess.Popen([sys.executable, "-m", "services.cli", "up", "--no-projectors"],
                                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=stderr)


async def _serving(data_dir: Path) -> None:
    async def ready() -> bool:
        return (data_dir / "instance.json").exists()

    await wait_until(ready, bool, timeout_s=60)


async def _request(nc: Client, subject: str, body: dict[str, Any]) -> dict[str, Any]:
    """A command with a command id, sent again while no replica answers (one was killed)."""
    body = {"command_id": uuid.uuid4().hex} | body
    for _ in range(60):
        try:
            msg = await nc.request(f"runlog.cmd.{subject}", json.dumps(body).encode(),
                                   timeout=2)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
            await asyncio.sleep(0.1)
            continue
        reply: dict[str, Any] = json.loads(msg.data)
        if reply.get("ok") or reply["error"]["code"] not in ("conflict", "unavailable"):
            return reply
        await asyncio.sleep(0.05)
    raise AssertionError(f"{subject} never answered")


async def _set_up(nc: Client) -> int:
    async def ok(subject: str, body: dict[str, Any]) -> None:
        reply = await _request(nc, subject, body)
        assert reply["ok"], reply

    await ok("queue.configure", {"kind": "gpu", "max_running": 3})
    for run_id, extra in (("limited", {"max_concurrency": 6}), ("open", {})):
        await ok("run.create", {"run_id": run_id, "name": run_id, **extra})
        await ok("run.start", {"run_id": run_id})
    await asyncio.gather(*(ok("worker.register", {"worker_id": f"w{n}", "capacity": 2})
                           for n in range(WORKERS)))
    tasks = ([{"run_id": "limited", "kind": "llm"}] * 20
             + [{"run_id": "limited", "kind": "llm", "concurrency_key": "tenant",
                 "max_concurrency": 2}] * 10
             + [{"run_id": "open", "kind": "gpu"}] * 15
             + [{"run_id": "open", "kind": "llm", "resource": "repo:main"}] * 8
             + [{"run_id": "open", "kind": "llm", "priority": 8}] * 15)
    await asyncio.gather(*(ok("task.submit", {"task_id": f"t{n}", **body})
                           for n, body in enumerate(tasks)))
    return len(tasks)


async def _claimer(nc: Client, worker_id: str, rng: random.Random, done: Counter[str],
                   abandoned: set[str], deadline: float) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        reply = await _request(nc, "task.claim", {"worker_id": worker_id})
        task = reply.get("task") if reply.get("ok") else None
        if task is None:
            await asyncio.sleep(0.05)
            continue
        await asyncio.sleep(rng.uniform(0, 0.03))
        if task["task_id"] in _ABANDONED and task["task_id"] not in abandoned:
            abandoned.add(task["task_id"])
            continue  # the worker vanished holding it: its lease expires
        holder = {"task_id": task["task_id"], "worker_id": worker_id,
                  "lease_epoch": task["lease_epoch"]}
        finished = await _request(nc, "task.succeed", holder)
        if finished.get("ok"):
            done[task["task_id"]] += 1


@pytest.fixture
async def settings(nc: Client, nats_url: str, tmp_path: Path) -> AsyncIterator[Settings]:
    async with fresh_stream(nc, nats_url, tmp_path / "unused") as fresh:
        yield fresh


async def test_limits_hold_on_two_replicas_through_kill_9_and_expiries(
        settings: Settings, tmp_path: Path) -> None:
    dirs = [tmp_path / "a", tmp_path / "b"]
    replicas = [_start(d, settings) for d in dirs]
    nc = await nats.connect(str(settings.nats_url))
    try:
        await asyncio.gather(*(_serving(d) for d in dirs))
        total = await _set_up(nc)
        loop = asyncio.get_running_loop()
        done: Counter[str] = Counter()
        abandoned: set[str] = set()
        deadline = loop.time() + 25
        claimers = [asyncio.create_task(_claimer(nc, f"w{n % WORKERS}", random.Random(n),
                                                 done, abandoned, deadline))
                    for n in range(2 * WORKERS)]
        await asyncio.sleep(2)
        replicas[0].send_signal(signal.SIGKILL)
        replicas[0].wait()
        await asyncio.sleep(1)
        replicas[0] = _start(dirs[0], settings)
        await wait_until(lambda: asyncio.sleep(0.05, result=len(done)),
                         lambda n: n == total, timeout_s=25)
        for claimer in claimers:
            claimer.cancel()
        await asyncio.gather(*claimers, return_exceptions=True)
        events = await NatsServiceClient(nc, settings.stream).events()
    finally:
        await nc.close()
        for process in replicas:
            process.send_signal(signal.SIGTERM)
        for process in replicas:
            process.wait(timeout=30)
    assert set(done) == {f"t{n}" for n in range(total)}
    assert max(done.values()) == 1, "a task succeeded twice"
    peaks = check_limits(events, max_running=MAX_RUNNING, by_run=BY_RUN, by_kind=BY_KIND,
                         capacity={f"w{n}": 2 for n in range(WORKERS)})
    # Each limit was reached (so it was tested), and never passed (check_limits).
    reached = (peaks.by_kind["gpu"], peaks.by_run["limited"], peaks.by_resource["repo:main"],
               peaks.by_key["tenant"])
    assert reached == (3, 6, 1, 2), peaks
    assert peaks.leases >= total + len(_ABANDONED), "an abandoned lease was not re-leased"
