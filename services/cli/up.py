"""``runlog up``: the whole service in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

from services.bootstrap import nats_server, serve
from services.lockfile import DataDirLock
from services.settings import Settings

__all__ = ["add_parser", "run", "wait_for_signal"]


def add_parser(verbs: Any) -> None:
    """Registers the verb."""
    parser = verbs.add_parser("up", help="run the service (embedded NATS unless RUNLOG_NATS_URL)")
    parser.add_argument("--no-projectors", action="store_true",
                        help="serve commands only; another process keeps the read models")
    parser.set_defaults(run=run)


def wait_for_signal() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (installed on the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def _serve_until_signal(url: str, settings: Settings, projectors: bool) -> None:
    stop = wait_for_signal()
    started = asyncio.Event()
    serving = asyncio.create_task(_serve(url, settings, projectors, stop, started))
    await until_stopped(serving, stop, started)


async def until_stopped(serving: asyncio.Task[None], stop: asyncio.Event,
                        started: asyncio.Event) -> None:
    """Waits for ``serving``; a signal before it has started cancels its start-up."""
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not serving.done() and not started.is_set():
        print("runlog is stopping during start-up", file=sys.stderr, flush=True)
        serving.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await serving
    stopping.cancel()


async def _serve(url: str, settings: Settings, projectors: bool, stop: asyncio.Event,
                 started: asyncio.Event) -> None:
    async with serve(settings, url, projectors=projectors):
        started.set()
        print(f"runlog is up: NATS {url}, data in {settings.data_dir.resolve()} "
              "(Ctrl-C to stop)", file=sys.stderr, flush=True)
        await stop.wait()
        print("runlog is stopping", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Holds the data directory, starts NATS if needed, serves until a signal."""
    with DataDirLock(settings.data_dir), nats_server(settings) as url:
        asyncio.run(_serve_until_signal(url, settings, not args.no_projectors))
    print("runlog stopped", file=sys.stderr)
    return 0
