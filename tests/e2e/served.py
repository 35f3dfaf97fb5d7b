"""One ``runlog up`` with a little of everything in its read models, for the HTTP tests."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats

from services.demo import run_workload
from services.sdk import Client
from tests.e2e.cli import instance_info, runlog, runlog_env, wait_for_instance

__all__ = ["Served", "get", "get_json", "serve_runlog"]


@dataclass(frozen=True)
class Served:
    """A running ``runlog up`` and what the test put into it."""

    data_dir: Path
    nats_url: str
    http_url: str
    process: subprocess.Popen[str]
    traced_run: str
    """A run cancelled with ``runlog send`` (so under a client trace id)."""
    trace_ids: dict[str, str]
    """The trace id of each event of ``traced_run`` and its task, by event type."""


def get(url: str, timeout_s: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one GET, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def get_json(url: str) -> tuple[int, Any]:
    """Status and decoded JSON body of one GET."""
    status, _, body = get(url)
    return status, json.loads(body)


async def _workload(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        client = Client(nc)
        await client.send("budget.create", {"budget_id": "team", "name": "team budget",
                                            "max_tokens": 5000})
        await client.send("run.create", {"run_id": "shared", "name": "on the team budget",
                                         "budget_id": "team"})
        await client.send("run.start", {"run_id": "shared"})
        await client.send("usage.record", {"run_id": "shared", "model": "gpt-4o-mini",
                                           "tokens_in": 900, "tokens_out": 300})
        # The demo's calls fail at random (8 %), and about one workload in twelve has no
        # failure at all: this one guarantees the breaker feed has something to feed.
        await client.send("usage.record", {"run_id": "shared", "model": "gpt-4o-mini",
                                           "tokens_in": 100, "tokens_out": 0,
                                           "outcome": "rate_limit"})
        report = await run_workload(client, runs=3, workers=2, seed=3)
        await client.send("run.create", {"run_id": "traced", "name": "cancelled by hand"})
        await client.send("run.start", {"run_id": "traced"})
        await client.send("task.submit", {"task_id": "traced-t1", "run_id": "traced",
                                          "kind": "code"})
    finally:
        await nc.close()
    # Let the submit reach the read models before the run is cancelled, so the test sees
    # the task's whole trace.
    await _rows(nats_url, "SELECT 1", client.last_seq)
    await _breakers_fed(nats_url)
    return max(report.last_seq, client.last_seq)


async def _breakers_fed(nats_url: str) -> None:
    """Waits for the breaker feed: a policy writes after the failed calls it reads."""
    deadline = time.monotonic() + 30
    while not await _rows(nats_url, "SELECT breaker_id FROM breakers LIMIT 1"):
        assert time.monotonic() < deadline, "the workload's failed calls fed no breaker"
        await asyncio.sleep(0.05)


def _send(data_dir: Path, subject: str, body: dict[str, Any]) -> int:
    done = runlog(data_dir, "send", subject, json.dumps(body))
    assert done.returncode == 0, done.stdout + done.stderr
    return int(json.loads(done.stdout)["seq"])


def _traced_run(data_dir: Path, run_id: str) -> int:
    """Cancels the run with ``runlog send``; its end makes the policy cancel the run's task."""
    return _send(data_dir, "run.cancel", {"run_id": run_id, "reason": "enough"})


async def _rows(nats_url: str, sql: str, wait_seq: int = 0) -> list[dict[str, Any]]:
    """Rows from the running read side (over ``runlog.sql.query``, as ``runlog sql`` asks)."""
    nc = await nats.connect(nats_url)
    try:
        request = {"sql": sql, "wait_seq": wait_seq, "wait_timeout_s": 30}
        msg = await nc.request("runlog.sql.query", json.dumps(request).encode(), timeout=40)
    finally:
        await nc.close()
    reply = json.loads(msg.data)
    assert reply["ok"], reply
    result = reply["result"]
    return [dict(zip(result["columns"], row, strict=True)) for row in result["rows"]]


async def _trace_ids(nats_url: str, run_id: str, wait_seq: int) -> dict[str, str]:
    """The trace id of each event of the run and its task, once the policy has cancelled it."""
    sql = ("SELECT event_type, trace_id FROM transitions "
           f"WHERE aggregate_id IN ('{run_id}', '{run_id}-t1') ORDER BY seq")
    deadline = time.monotonic() + 30
    while True:
        rows = await _rows(nats_url, sql, wait_seq)
        ids = {row["event_type"]: row["trace_id"] for row in rows}
        if "TaskCancelled" in ids or time.monotonic() > deadline:
            return ids
        await asyncio.sleep(0.05)


def serve_runlog(data_dir: Path, env: dict[str, str] | None = None) -> Iterator[Served]:
    """Starts ``runlog up``, fills its read models, yields it, and stops it with SIGINT."""
    log = (data_dir.parent / f"{data_dir.name}-up.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "services.cli", "up"],
                               env=runlog_env(data_dir, env), stdout=log, stderr=log, text=True)
    try:
        nats_url = wait_for_instance(data_dir, process)
        last_seq = asyncio.run(_workload(nats_url))
        last_seq = max(last_seq, _traced_run(data_dir, "traced"))
        trace_ids = asyncio.run(_trace_ids(nats_url, "traced", last_seq))
        yield Served(data_dir, nats_url, str(instance_info(data_dir)["http_url"]), process,
                     "traced", trace_ids)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
