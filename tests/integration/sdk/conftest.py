"""Fixtures of the SDK tests: a real runlog (commands, policies, read models) on its own stream."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import nats.js.errors
import pytest
from nats.aio.client import Client as NatsClient

from services.bootstrap import serve
from services.sdk import Client, QueryResult, RetryPolicy
from services.settings import Settings
from tests.support.nats_server import unique_stream_name, wait_until

__all__ = ["QUICK_RETRIES", "REPO", "STREAM_PREFIX", "eventually", "exited", "rows",
           "running_runlog", "spawn", "until"]

REPO = Path(__file__).resolve().parents[3]

STREAM_PREFIX = "SDK"
"""Streams these tests create, deleted afterwards (two cannot share ``runlog.evt.>``)."""

QUICK_RETRIES = RetryPolicy(attempts=4, wait_initial_s=0.01, wait_max_s=0.05, wait_jitter_s=0.01)


async def _delete_streams(nc: NatsClient, prefix: str) -> None:
    js = nc.jetstream()
    for info in await js.streams_info():
        name = info.config.name or ""
        if name.startswith(prefix):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(name)


@contextlib.asynccontextmanager
async def running_runlog(nc: NatsClient, nats_url: str, data_dir: Path, **overrides: Any
                         ) -> AsyncIterator[Settings]:
    """The whole runlog, read models included, on a fresh stream; ``overrides`` its settings."""
    await _delete_streams(nc, STREAM_PREFIX)
    settings = Settings(nats_url=nats_url, data_dir=data_dir,
                        stream=unique_stream_name(STREAM_PREFIX), **overrides)
    try:
        async with serve(settings, nats_url):
            yield settings
    finally:
        await _delete_streams(nc, settings.stream)


@pytest.fixture
async def runlog(nc: NatsClient, nats_url: str, tmp_path: Path) -> AsyncIterator[Settings]:
    """A running runlog for this test."""
    async with running_runlog(nc, nats_url, tmp_path / "runlog") as settings:
        yield settings


@pytest.fixture
def client(nc: NatsClient, runlog: Settings) -> Client:
    """An SDK client of the running runlog."""
    return Client(nc, retry=QUICK_RETRIES)


async def eventually(client: Client, sql: str, accept: Callable[[QueryResult], bool],
                     timeout_s: float = 20.0) -> QueryResult:
    """Queries the read models until ``accept`` holds, with a deadline."""
    async def probe() -> QueryResult:
        return await client.query(sql)

    return await wait_until(probe, accept, timeout_s)


async def until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Waits until ``condition()`` holds, with a deadline."""
    async def probe() -> bool:
        return condition()

    await wait_until(probe, bool, timeout_s)


def spawn(args: list[str], nats_url: str, cwd: Path) -> subprocess.Popen[str]:
    """A Python process on the test's NATS (``RUNLOG_NATS_URL``), this repository importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNLOG_", "OTEL_"))}
    env |= {"RUNLOG_NATS_URL": nats_url, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


async def exited(process: subprocess.Popen[str], timeout_s: float = 30.0) -> str:
    """Waits for ``process`` to exit and returns its stderr (killed if it overstays)."""
    try:
        # In a thread: the service under test answers in this event loop.
        return (await asyncio.to_thread(process.communicate, timeout=timeout_s))[1]
    finally:
        process.kill()


def rows(result: QueryResult) -> list[tuple[Any, ...]]:
    """A result's rows as tuples."""
    return [tuple(row) for row in result.rows]

