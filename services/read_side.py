"""Runs the read side (projectors and the SQL responder) beside the command service.

``runlog up`` runs it in a child process of its own (``ReadSideProcess``): its own NATS
connection and its own GIL, so projecting never slows commands. The parent supervises
it: a child that dies is started again with a growing pause, and it is stopped with the
parent, never left behind (``services.read_side_child``). ``LiveReadSide`` runs the same
read side inside the calling process, for embedded uses that ask for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, fields
from typing import Protocol

from nats.aio.client import Client
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from projections import QueryResult, ReadSide, SqlLimits, query_over_nats
from projections.freshness import FreshnessHistogram
from projections.telemetry import ProjectorTelemetry, observe_sql
from services.errors import RunlogError
from services.settings import Settings
from services.store import JetStreamEventStore

from .shutdown import cancel_within, describe_error

__all__ = ["STATUS_INTERVAL_S", "ChildStatus", "LiveReadSide", "ReadSideHandle",
           "ReadSideProcess", "ReadSideProcessError", "sql_limits", "start_read_side"]

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 0.5
"""How often the child tells its parent where its projector is."""
_HEALTHY_AFTER_S = 60.0
"""A child that ran this long was healthy: the next restart waits the shortest pause again."""
_KILL_AFTER_S = 5.0
"""How long a child may take to stop after SIGTERM before it is killed."""


def sql_limits(settings: Settings) -> SqlLimits:
    """The ``RUNLOG_SQL_*`` caps, for the service's queries and for local read-only opens."""
    return SqlLimits(max_timeout_s=settings.sql_max_timeout_s, workers=settings.sql_workers,
                     per_client=settings.sql_per_client, queue=settings.sql_queue,
                     memory_limit=settings.sql_memory_limit.strip(),
                     temp_limit=settings.sql_temp_limit.strip(), threads=settings.sql_threads)


class ReadSideHandle(Protocol):
    """What the rest of the process may ask of the read side, wherever it runs."""

    @property
    def position(self) -> int:
        """The stream sequence every read model has applied (as last reported)."""
        ...

    async def wait_for_seq(self, seq: int, timeout_s: float = 10.0) -> int:
        """Waits until every projection has applied stream sequence ``seq``."""
        ...

    async def query(self, sql: str) -> QueryResult:
        """Runs a read-only query on the live read models."""
        ...

    async def stop(self) -> None:
        """Stops projecting and serving SQL."""
        ...


class LiveReadSide:
    """The read side inside this process: read-your-writes waits and queries on its file."""

    def __init__(self, read_side: ReadSide) -> None:
        self.read_side = read_side

    @property
    def position(self) -> int:
        """The stream sequence every read model has applied."""
        return self.read_side.projector.position

    async def wait_for_seq(self, seq: int, timeout_s: float = 10.0) -> int:
        """Waits until every projection has applied stream sequence ``seq``."""
        return await self.read_side.wait_for_seq(seq, timeout_s)

    async def query(self, sql: str) -> QueryResult:
        """Runs a read-only query on the live read models."""
        return await self.read_side.query(sql)

    async def stop(self) -> None:
        """Stops serving SQL and projecting, and closes the file."""
        await self.read_side.stop()


async def start_read_side(store: JetStreamEventStore, settings: Settings) -> LiveReadSide:
    """Starts the projectors and the ``runlog.sql.*`` responder in this process."""
    read_side = ReadSide(store, settings.duckdb_path, limits=sql_limits(settings))
    await read_side.start()
    return LiveReadSide(read_side)


class ReadSideProcessError(RunlogError):
    """The read side's process could not be started."""


@dataclass(frozen=True, slots=True)
class ChildStatus:
    """One status line of the read side's process."""

    ready: bool = False
    """Set on the line that says it serves."""
    position: int = 0
    """The stream sequence every read model has applied."""
    head: int = 0
    """The stream head its projector last knew of."""
    lag: int = 0
    halted: str | None = None
    """Why its projector halted, when it did."""
    pid: int = 0
    sql_running: int = 0
    """SQL queries running in its query workers."""
    sql_waiting: int = 0
    """SQL queries waiting for a worker."""
    freshness: dict[str, object] | None = None
    """Its projector's freshness histogram so far (``FreshnessHistogram.to_dict``)."""

    def to_dict(self) -> dict[str, object]:
        """The JSON object of the line."""
        return asdict(self)

    @classmethod
    def from_line(cls, line: bytes) -> ChildStatus | None:
        """Reads one line; anything that is not a status (a stray print) is None."""
        try:
            value = json.loads(line)
        except ValueError:
            return None
        if not isinstance(value, dict):
            return None
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in value.items() if k in known})
        except TypeError:
            return None


class ReadSideProcess:
    """Runs the read side in a supervised child process and answers for it here.

    Queries and read-your-writes waits go to the child over NATS (``runlog.sql.query``);
    its projector's position and lag arrive on its status lines and are reported as this
    process's ``runlog.projector.lag`` gauge, so ``/metrics`` shows them.
    """

    def __init__(self, nc: Client, url: str, settings: Settings, *,
                 first_pause_s: float = 0.5, max_pause_s: float = 30.0) -> None:
        self._nc = nc
        self._url = url
        self._settings = settings
        self._first_pause_s = first_pause_s
        self._max_pause_s = max_pause_s
        self.status = ChildStatus()
        self.restarts = 0
        """How often a child that died was started again."""
        self._child: asyncio.subprocess.Process | None = None
        self._supervising: asyncio.Task[None] | None = None
        self.telemetry = ProjectorTelemetry("read_models")
        _observe_restarts(self)
        observe_sql(self)  # the child's SQL load, as its status lines report it

    @property
    def position(self) -> int:
        """The child's position as of its last status line (at most half a second old)."""
        return self.status.position

    @property
    def running(self) -> int:
        """SQL queries the child runs (as last reported)."""
        return self.status.sql_running

    @property
    def waiting(self) -> int:
        """SQL queries waiting in the child (as last reported)."""
        return self.status.sql_waiting

    @property
    def pid(self) -> int | None:
        """The running child's pid."""
        child = self._child
        return child.pid if child is not None and child.returncode is None else None

    async def start(self) -> None:
        """Starts the child and waits until it serves; raises if it dies before."""
        child = await self._spawn()
        await self._until_ready(child)
        self._supervising = asyncio.create_task(self._supervise(child),
                                                name="read side supervisor")

    async def stop(self) -> None:
        """Stops the child (SIGTERM, then SIGKILL past the deadline); no restart follows."""
        if self._supervising is not None:
            await cancel_within([self._supervising], 1.0)
            self._supervising = None
        child, self._child = self._child, None
        if child is None or child.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            child.terminate()
        try:
            await asyncio.wait_for(child.wait(), _KILL_AFTER_S)
        except TimeoutError:
            log.warning("the read side process (pid %d) did not stop within %.0f s: killed",
                        child.pid, _KILL_AFTER_S)
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()

    async def wait_for_seq(self, seq: int, timeout_s: float = 10.0) -> int:
        """Waits until the child's read models include ``seq``; returns their position."""
        result = await query_over_nats(
            self._nc, "SELECT min(last_seq) FROM checkpoints", wait_seq=seq,
            wait_timeout_s=timeout_s)
        return int(result.rows[0][0]) if result.rows and result.rows[0][0] is not None else seq

    async def query(self, sql: str) -> QueryResult:
        """Runs a read-only query in the child."""
        return await query_over_nats(self._nc, sql)

    async def _spawn(self) -> asyncio.subprocess.Process:
        # Started from the event loop's thread, which lives as long as the process: the
        # kernel's parent-death signal is tied to the thread that forked the child.
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.read_side_child", str(self._settings.data_dir),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            # Its own session: a terminal's Ctrl-C reaches the parent only, which stops the
            # read side after the commands in flight are answered.
            start_new_session=True)
        self._child = child
        if child.stdin is None:
            raise ReadSideProcessError("the read side process has no stdin pipe")
        child.stdin.write(json.dumps({
            "url": self._url, "parent": os.getpid(),
            "settings": self._settings.model_dump(mode="json"),
            "log_level": logging.getLogger().getEffectiveLevel(),
        }).encode() + b"\n")
        await child.stdin.drain()  # stdin stays open: its end tells the child we are gone
        return child

    async def _until_ready(self, child: asyncio.subprocess.Process) -> None:
        while child.stdout is not None and (line := await child.stdout.readline()):
            if self._update(line) and self.status.ready:
                return
        code = await child.wait()
        raise ReadSideProcessError(f"the read side process exited with code {code} "
                                   "before it served (see its log above)")

    async def _pump(self, child: asyncio.subprocess.Process) -> int:
        """Reads the child's status lines until it exits; returns its exit code.

        A child whose projector halted (a DuckDB I/O error, a full disk, a strict halt) is
        stopped, to be started again like one that died: the new process reopens the file
        and carries on from its checkpoint. Left alone, it beat on with its projector
        stopped for good, and every probe said ready.
        """
        while child.stdout is not None and (line := await child.stdout.readline()):
            if self._update(line) and self.status.halted:
                with contextlib.suppress(ProcessLookupError):
                    child.terminate()
        return await child.wait()

    def _update(self, line: bytes) -> bool:
        status = ChildStatus.from_line(line)
        if status is None:
            return False
        if status.halted and not self.status.halted:
            log.error("the read side's projector halted: %s", status.halted)
        self.status = status
        self.telemetry.position = status.position
        self.telemetry.lag = status.lag
        self.telemetry.freshness = FreshnessHistogram.from_dict(status.freshness)
        return True

    async def _supervise(self, child: asyncio.subprocess.Process) -> None:
        """Starts the child again whenever it dies, pausing longer after each quick death."""
        pause = self._first_pause_s
        while True:
            started = time.monotonic()
            code = await self._pump(child)
            if time.monotonic() - started > _HEALTHY_AFTER_S:
                pause = self._first_pause_s
            log.warning("the read side process (pid %d) exited with code %s; starting it "
                        "again in %.1f s", child.pid, code, pause)
            child, pause = await self._restart(pause)

    async def _restart(self, pause: float) -> tuple[asyncio.subprocess.Process, float]:
        """Starts a new child after ``pause``; returns it and the next pause."""
        while True:
            await asyncio.sleep(pause)
            pause = min(pause * 2, self._max_pause_s)
            try:
                child = await self._spawn()
                await self._until_ready(child)
            except (ReadSideProcessError, OSError) as error:
                log.warning("the read side did not start again: %s; next try in %.1f s",
                            describe_error(error), pause)
                continue
            self.restarts += 1
            log.warning("the read side process is back (pid %d, at seq %d)", child.pid,
                        self.status.position)
            return child, pause


_supervisors: list[ReadSideProcess] = []


def _observe_restarts(supervisor: ReadSideProcess) -> None:
    """Counts the read side's restarts in this process's metrics (one instrument for all)."""
    if not _supervisors:
        metrics.get_meter("runlog.read_side").create_observable_counter(
            "runlog.read_side.restarts", callbacks=[_restart_counts], unit="{restart}",
            description="Times the read side's process died and was started again")
    _supervisors[:] = [supervisor]


def _restart_counts(options: CallbackOptions) -> list[Observation]:
    return [Observation(s.restarts) for s in _supervisors]
