"""``runlog up``: the whole service in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import TYPE_CHECKING

import click

from .context import RunlogCommand, state
from .output import say

if TYPE_CHECKING:
    from rich.status import Status

    from services.embedded_nats import EmbeddedNats
    from services.settings import Settings

__all__ = ["command", "until_stopped", "wait_for_signal"]


@click.command("up", cls=RunlogCommand)
@click.option("--no-projectors", is_flag=True,
              help="serve commands only; another process keeps the read models")
def command(no_projectors: bool) -> int:
    """Run the service (embedded NATS unless RUNLOG_NATS_URL or --server)."""
    from services.lockfile import DataDirLock
    from services.log_connection import nats_server_process

    settings = state().settings()
    starting = state().console(stderr=True).status(
        f"starting runlog in {settings.data_dir.resolve()}", spinner="dots")
    starting.start()
    try:
        with DataDirLock(settings.data_dir), nats_server_process(settings) as (url, server):
            starting.update(f"starting the command service and projectors on NATS {url}")
            lost = asyncio.run(_serve_until_signal(url, settings, not no_projectors, starting,
                                                   server))
    finally:
        starting.stop()
    if lost is not None:
        say(f"runlog stopped: its nats-server exited with code {lost}", style="red")
        return 1
    say("runlog stopped")
    return 0


def wait_for_signal() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (installed on the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def _serve_until_signal(url: str, settings: Settings, projectors: bool,
                              starting: Status, server: EmbeddedNats | None) -> int | None:
    """Serves until a signal, or until the embedded nats-server dies (its exit code)."""
    stop = wait_for_signal()
    started = asyncio.Event()
    lost: list[int] = []
    watching = asyncio.create_task(_watch(server, stop, lost)) if server else None
    serving = asyncio.create_task(_serve(url, settings, projectors, stop, started, starting))
    try:
        await until_stopped(serving, stop, started)
    finally:
        if watching is not None:
            watching.cancel()
    return lost[0] if lost else None


async def _watch(server: EmbeddedNats, stop: asyncio.Event, lost: list[int]) -> None:
    """Stops runlog when its own nats-server exits: nothing would be served again (every
    client reconnecting for ever), while a supervisor (systemd, Kubernetes) restarts a
    process that exits."""
    if server.pid is None:
        return
    # A pidfd turns readable when the process exits: no thread waits, nothing polls.
    exited = asyncio.Event()
    loop = asyncio.get_running_loop()
    pidfd = os.pidfd_open(server.pid)
    loop.add_reader(pidfd, exited.set)
    try:
        await exited.wait()
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    code = server.exit_code()
    if code is None:
        return  # stopped by runlog itself
    say(f"the embedded nats-server exited with code {code}: runlog is stopping", style="red")
    lost.append(code)
    stop.set()


async def until_stopped(serving: asyncio.Task[None], stop: asyncio.Event,
                        started: asyncio.Event) -> None:
    """Waits for ``serving``; a signal before it has started cancels its start-up."""
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not serving.done() and not started.is_set():
        say("runlog is stopping during start-up")
        serving.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await serving
    stopping.cancel()


async def _serve(url: str, settings: Settings, projectors: bool, stop: asyncio.Event,
                 started: asyncio.Event, starting: Status) -> None:
    from services.bootstrap import serve
    from services.gc_tuning import freeze_started_process, tune_for_service

    tune_for_service()
    async with serve(settings, url, projectors=projectors, http=True) as instance:
        freeze_started_process()
        started.set()
        starting.stop()
        say(f"runlog is up: NATS {url}, data in {settings.data_dir.resolve()}, dashboard "
            f"{instance.http_url or 'off'} (Ctrl-C to stop)", style="green")
        await stop.wait()
        say("runlog is stopping")
