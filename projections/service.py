"""The read side of a running runlog: it owns the DuckDB file, projects into it and serves it.

``runlog up`` starts one ``ReadSide``. It runs the projector, and answers on NATS
(request/reply, queue group ``runlog-sql``) for the processes that cannot open the
file while it holds it; every query goes through the ``SqlService`` (per-client turns,
a bounded queue, capped time, interrupted when the service stops or the projector
needs the memory):

- ``runlog.sql.query``: ``{"sql", "limit", "timeout_s", "wait_seq", "wait_timeout_s"}``
  -> ``{"ok": true, "result": {"columns", "types", "rows", "truncated", "position"}}``;
  with ``"stream": true`` every row (or ``limit`` rows) in acknowledged parts
  (``projections.sql_stream``)
- ``runlog.sql.export``: ``{"name", "format": "parquet" | "duckdb"}`` -> a consistent
  snapshot under ``<data dir>/snapshots/`` -> ``{"ok": true, "result": {"path"}}``
- ``runlog.sql.rebuild``: ``{}`` -> the live file rebuilt from the log: the projector
  pauses, the fresh file is caught up to it and swapped in, and projection resumes.

Each body is read with its model in ``projections.sql_messages`` (the AsyncAPI document
shows the same models); failures answer ``{"ok": false, "error": {"code", "message"}}``
with a one-line message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from services.errors import StoreError
from services.store import JetStreamEventStore

from .database import ReadModelDb
from .errors import ProjectionError, ProjectionHalted, SchemaMismatch
from .limits import DEFAULT_LIMITS, SqlLimits
from .liveness import BEAT_INTERVAL_S, beat, mark_stopped
from .query import DEFAULT_LIMIT, QueryResult, QueryWatch, execute_query
from .replay import REPLAY_CONFIG, ReplayResult, build_read_models, swap_into_place
from .responder import Request, Responder
from .runtime import Projector, ProjectorConfig
from .snapshot import export_snapshot, snapshot_path
from .sql_messages import (
    MAX_REPLY_ROWS,
    ExportRequest,
    QueryRequest,
    RebuildRequest,
    parse_request,
)
from .sql_service import SqlService
from .sql_stream import stream_job

__all__ = ["SQL_QUEUE", "SQL_SUBJECT_PREFIX", "ReadSide"]

log = logging.getLogger(__name__)

SQL_SUBJECT_PREFIX = "runlog.sql"
"""Outside ``runlog.cmd.>`` on purpose: the command service answers everything under it."""
SQL_QUEUE = "runlog-sql"
_LOCAL = "in-process"


class ReadSide:
    """Projector, SQL responder and rebuilds for one read-model file."""

    def __init__(
        self,
        store: JetStreamEventStore,
        db_path: Path,
        config: ProjectorConfig | None = None,
        subject_prefix: str = SQL_SUBJECT_PREFIX,
        queue: str = SQL_QUEUE,
        limits: SqlLimits = DEFAULT_LIMITS,
    ) -> None:
        self.store = store
        self.db_path = db_path
        self.config = config or ProjectorConfig()
        self.halted: ProjectionHalted | None = None
        self._db: ReadModelDb | None = None
        self._projector: Projector | None = None
        self._task: asyncio.Task[None] | None = None
        self._beating: asyncio.Task[None] | None = None
        self._stop_beating_now = asyncio.Event()
        self._started_at = datetime.now(UTC)
        self.limits = limits
        self.sql = SqlService(limits)
        self._responder = Responder(store.nc, subject_prefix, queue, {
            "query": self._serve_query, "export": self._serve_export,
            "rebuild": self._serve_rebuild,
        })

    @property
    def projector(self) -> Projector:
        """The running projector."""
        if self._projector is None:
            raise ProjectionError("the read side is not started")
        return self._projector

    async def start(self) -> None:
        """Opens (rebuilding it if its schema is stale) the file, starts projecting and serving."""
        try:
            self._db = await asyncio.to_thread(self._open)
        except SchemaMismatch as mismatch:
            log.warning("%s; rebuilding it from the log", mismatch)
            await build_read_models(self.store, self.db_path)
            self._db = await asyncio.to_thread(self._open)
        self._projector = Projector(self.store, self._db, self.config)
        self._projector.on_strain = self._give_memory_back
        self.sql.start()
        self._task = asyncio.create_task(self._project(), name="runlog-projector")
        self._stop_beating_now.clear()
        self._beating = asyncio.create_task(self._beat(), name="runlog-liveness")
        await self._responder.start()

    async def stop(self) -> None:
        """Stops serving (queries in flight are interrupted) and projecting; closes the file."""
        await self.sql.stop()
        await self._responder.stop()
        await self._stop_beating()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._db is not None:
            await asyncio.to_thread(self._db.close)
            self._db = None

    async def __aenter__(self) -> ReadSide:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def _beat(self) -> None:
        """Refreshes the file's sign of life (``service_liveness``) until ``stop`` asks."""
        while not self._stop_beating_now.is_set():
            await self._beat_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_beating_now.wait(), BEAT_INTERVAL_S)

    async def _beat_once(self) -> None:
        try:
            async with self.sql.gate.shared():
                await asyncio.to_thread(beat, self._require_db(), self._started_at)
        except Exception as error:  # a missed beat must not stop the read side
            log.warning("liveness beat failed: %s", error)

    async def _stop_beating(self) -> None:
        # Not cancelled: a beat in a worker thread must finish before the file closes.
        if self._beating is None:
            return
        self._stop_beating_now.set()
        await self._beating
        self._beating = None
        if self._db is not None:
            try:
                await asyncio.to_thread(mark_stopped, self._db)
            except Exception as error:  # the file may already be unusable; health still ages out
                log.warning("could not record the stop: %s", error)

    async def wait_for_seq(self, seq: int, timeout_s: float = 10.0) -> int:
        """Waits until the read models include ``seq`` (read your writes)."""
        self._raise_if_halted()
        return await self.projector.wait_for_seq(seq, timeout_s)

    async def query(self, sql: str, limit: int = DEFAULT_LIMIT, timeout_s: float | None = None,
                    client: str = _LOCAL) -> QueryResult:
        """Runs a read-only query on the live file in a query worker, in ``client``'s turn."""
        def job(watch: QueryWatch) -> QueryResult:
            return execute_query(self._require_db(), sql, limit, watch=watch,
                                 position=self._committed)
        return await self.sql.run(client, timeout_s, job)

    async def export(self, name: str, fmt: str = "parquet", client: str = _LOCAL) -> Path:
        """Writes a consistent snapshot under ``<data dir>/snapshots/`` and returns its path."""
        dest = snapshot_path(self.db_path, name, fmt)
        # Bounded like a query (its turn, memory, a stop); its time limit is the longest allowed.
        return await self.sql.run(client, self.limits.max_timeout_s, lambda watch: export_snapshot(
            self._require_db(), dest, fmt, watch, self.limits))

    async def rebuild(self) -> ReplayResult:
        """Rebuilds the live file from the log while serving, then swaps it in."""
        started = time.monotonic()
        fresh = self.db_path.with_name(self.db_path.name + ".rebuild")
        await build_read_models(self.store, fresh)
        projector = self.projector
        async with projector.paused(), self.sql.gate.exclusive():
            # The tail written since the build started, then the swap; queries wait meanwhile.
            await self._catch_up_file(fresh, projector.position)
            await asyncio.to_thread(self._require_db().close)
            await asyncio.to_thread(swap_into_place, fresh, self.db_path)
            self._db = await asyncio.to_thread(self._open)
            projector.use_database(self._db)
        await self._beat_once()  # the fresh file knows at once that a service writes it
        return ReplayResult(self.db_path, projector.position, time.monotonic() - started)

    async def _catch_up_file(self, path: Path, until_seq: int) -> None:
        db = await asyncio.to_thread(ReadModelDb.open_writer, path)
        try:
            await Projector(self.store, db, REPLAY_CONFIG, name="rebuild").catch_up(until_seq)
        finally:
            await asyncio.to_thread(db.close)

    async def _project(self) -> None:
        """Runs the projector, riding out store outages; a halt stops it for good."""
        delay = 0.2
        while True:
            try:
                await self.projector.run()
            except ProjectionHalted as halted:
                self.halted = halted
                log.error("projector halted: %s", halted)
                return
            except StoreError as error:
                log.warning("projector lost the log (%s); retrying in %.1f s", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except Exception as error:
                log.exception("projector stopped")
                self.halted = ProjectionHalted(f"projector stopped: {error}".splitlines()[0])
                return

    def _committed(self) -> int:
        # What a query reports as its position: the projector's commits, all of which
        # its snapshot holds (asked before the snapshot is taken).
        return self.projector.position

    def _require_db(self) -> ReadModelDb:
        if self._db is None:
            raise ProjectionError("the read side is not started")
        return self._db

    def _open(self) -> ReadModelDb:
        return ReadModelDb.open_writer(self.db_path, limits=self.limits)

    def _give_memory_back(self) -> int:
        return self.sql.interrupt_all("the projector needed the memory (RUNLOG_SQL_MEMORY_LIMIT)")

    def _raise_if_halted(self) -> None:
        if self.halted is not None:
            raise ProjectionHalted(f"projector halted: {self.halted}", self.halted.seq)

    # -- NATS handlers ------------------------------------------------------------

    async def _serve_query(self, request: Request) -> dict[str, Any]:
        asked = parse_request(QueryRequest, request.body)
        if asked.wait_seq is not None:
            wait_s = self.limits.timeout(10.0 if asked.wait_timeout_s is None
                                         else asked.wait_timeout_s)
            await self.wait_for_seq(min(asked.wait_seq, 2**63 - 1), wait_s)
        if asked.stream:
            job = stream_job(self._require_db, asked.sql, asked.limit, await request.stream(),
                             self._committed)
            return await self.sql.run(request.client, asked.timeout_s, job)
        limit = DEFAULT_LIMIT if asked.limit is None else min(asked.limit, MAX_REPLY_ROWS)
        return (await self.query(asked.sql, limit, asked.timeout_s, request.client)).to_dict()

    async def _serve_export(self, request: Request) -> dict[str, Any]:
        asked = parse_request(ExportRequest, request.body)
        name = asked.name or time.strftime("%Y%m%dT%H%M%S")
        return {"path": str(await self.export(name, asked.format, request.client))}

    async def _serve_rebuild(self, request: Request) -> dict[str, Any]:
        parse_request(RebuildRequest, request.body)
        result = await self.rebuild()
        return {"path": str(result.path), "position": result.position,
                "seconds": result.seconds}

