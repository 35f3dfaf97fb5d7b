"""The read side's own process: ``python -m services.read_side_child <data dir>``.

``runlog up`` starts it (``services.read_side.ReadSideProcess``) so that projecting and
answering SQL never take the command service's GIL. It has its own NATS connection,
owns the DuckDB file, and talks to its parent through two pipes:

- stdin: one JSON line ``{"url", "settings", "parent", "log_level"}``, then nothing; its
  end (EOF) means the parent is gone.
- stdout: JSON lines, ``{"ready": true, ...}`` once it serves, then a status about every
  half second: ``{"position", "head", "lag", "halted", "freshness", ...}``.

It never outlives its parent: on Linux the kernel sends it SIGTERM when the parent dies
(``PR_SET_PDEATHSIG``, ``kill -9`` included); everywhere, the closed stdin and a
parent-pid watch stop it too. SIGTERM stops it cleanly, under a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import TextIO

from projections import ReadSide
from projections.replay_applier import own_stdout

from .gc_tuning import freeze_started_process, tune_for_service
from .nats_connection import connect_nats
from .read_side import STATUS_INTERVAL_S, ChildStatus, sql_limits
from .settings import Settings
from .shutdown import describe_error
from .store import JetStreamEventStore

__all__ = ["main"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_PARENT_WATCH_S = 0.5
_STOP_DEADLINE_S = 5.0
"""The parent waits a little longer than this before it kills the process."""


def die_with_parent(parent: int) -> bool:
    """Asks the kernel for SIGTERM when the parent dies; False when it already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    # The parent may have died before the request took effect: then nobody would send it.
    return os.getppid() == parent


class _StopOnEof(asyncio.Protocol):
    """Sets ``stop`` when the parent's end of stdin closes."""

    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop

    def eof_received(self) -> bool | None:
        self._stop.set()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop.set()


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        if os.getppid() != parent:
            log.warning("the parent process %d is gone: stopping the read side", parent)
            stop.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), _PARENT_WATCH_S)


def _emit(out: TextIO, status: ChildStatus) -> None:
    out.write(json.dumps(status.to_dict()) + "\n")
    out.flush()


def _status_of(read_side: ReadSide, ready: bool = False) -> ChildStatus:
    projector = read_side.projector
    halted = str(read_side.halted) if read_side.halted is not None else None
    return ChildStatus(ready=ready, position=projector.position,
                       head=projector.position + projector.telemetry.lag,
                       lag=projector.telemetry.lag, halted=halted, pid=os.getpid(),
                       sql_running=read_side.sql.running, sql_waiting=read_side.sql.waiting,
                       freshness=projector.telemetry.freshness.to_dict())


async def _report(read_side: ReadSide, out: TextIO, stop: asyncio.Event) -> None:
    """Tells the parent where the projector is, until ``stop`` is set."""
    while not stop.is_set():
        _emit(out, _status_of(read_side))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), STATUS_INTERVAL_S)


async def serve_read_side(url: str, settings: Settings, parent: int, out: TextIO) -> None:
    """Projects and serves SQL until SIGTERM, the end of stdin, or the parent's death."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await loop.connect_read_pipe(lambda: _StopOnEof(stop), sys.stdin)
    watching = asyncio.create_task(_watch_parent(parent, stop), name="parent watch")
    nc = await connect_nats(url, "runlog-read-side", settings=settings)
    read_side = ReadSide(JetStreamEventStore(nc, stream=settings.stream,
                                             replicas=settings.replicas),
                         settings.duckdb_path, limits=sql_limits(settings))
    try:
        await read_side.start()
        freeze_started_process()
        _emit(out, _status_of(read_side, ready=True))
        await _report(read_side, out, stop)
    finally:
        await _within(read_side.stop, "the read side")
        await _within(nc.close, "its NATS connection")
        watching.cancel()


async def _within(stop: Callable[[], object], name: str) -> None:
    """Runs one stop step under the deadline; what overruns is logged and left behind."""
    async def step() -> None:
        result = stop()
        if asyncio.iscoroutine(result):
            await result

    running = asyncio.create_task(step())
    done, _ = await asyncio.wait({running}, timeout=_STOP_DEADLINE_S)
    if not done:
        log.warning("stopping %s took more than %.0f s", name, _STOP_DEADLINE_S)
    elif (error := running.exception()) is not None:
        log.warning("stopping %s: %s", name, describe_error(error))


def main() -> int:
    """The process's entry point; its exit code is what the parent logs."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when the read side stops
    config = json.loads(sys.stdin.readline() or "{}")
    parent = int(config.get("parent", 0))
    if not die_with_parent(parent):
        return 3
    logging.basicConfig(level=int(config.get("log_level", logging.WARNING)),
                        format="%(asctime)s %(levelname)s %(name)s [read side]: %(message)s")
    from .telemetry import configure_telemetry

    settings = Settings(**config["settings"])
    tune_for_service()
    provider = configure_telemetry()
    out = own_stdout()  # status lines alone; anything else printed goes to the log stream
    try:
        asyncio.run(serve_read_side(str(config["url"]), settings, parent, out))
    except Exception as error:
        log.error("the read side stopped: %s", describe_error(error))
        return 1
    finally:
        if provider is not None:
            provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
