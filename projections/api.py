"""What the ``runlog`` CLI calls: SQL, snapshots and replays, whether or not ``runlog up`` runs.

DuckDB lets one process hold the file read-write. So every call first tries the file
itself (read-only); when a running ``runlog up`` holds it, the call goes to that
process over NATS (``runlog.sql.*``) instead. Every failure is a ``ProjectionError``
(a ``RunlogError``) with a one-line message; none leaks a DuckDB or NATS exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TextIO, TypeVar

import nats
import nats.errors
from nats.aio.client import Client

from services.nats_connection import server_list
from services.store import JetStreamEventStore

from .database import ReadModelDb, writer_waiting
from .errors import (
    CODES,
    DatabaseBusy,
    ProjectionError,
    QueryRefused,
    QueryUnavailable,
    ReplayRefused,
    WaitTimeout,
)
from .limits import DEFAULT_LIMITS, SqlLimits
from .output import STREAM_FORMATS, RowWriter
from .query import (
    DEFAULT_LIMIT,
    DEFAULT_TIMEOUT_S,
    FORMATS,
    QueryResult,
    QueryWatch,
    execute_query,
    format_result,
)
from .replay import ReplayResult, as_of_path, build_read_models, ensure_not_held
from .runtime import Progress
from .service import SQL_SUBJECT_PREFIX
from .snapshot import SNAPSHOT_FORMATS, export_snapshot, snapshot_path
from .sql_stream import StreamSummary, receive_stream, write_local

__all__ = [
    "export",
    "export_async",
    "parse_until",
    "query",
    "query_async",
    "query_over_nats",
    "replay",
    "run_sql",
    "run_sql_async",
    "stream_sql",
    "stream_sql_async",
]

T = TypeVar("T")

NatsOptions = Mapping[str, Any]
"""Keyword arguments for ``nats.connect`` (TLS, credentials, inbox prefix): the caller's
``services.nats_connection.connection_options``."""

_REBUILD_TIMEOUT_S = 3600.0


def run_sql(sql: str, *, db_path: Path, nats_url: str | None = None, fmt: str = "table",
            limit: int = DEFAULT_LIMIT, timeout_s: float = DEFAULT_TIMEOUT_S,
            wait_seq: int | None = None, wait_timeout_s: float = 10.0,
            subject_prefix: str = SQL_SUBJECT_PREFIX, limits: SqlLimits = DEFAULT_LIMITS,
            nats_options: NatsOptions | None = None) -> str:
    """Runs one read-only query and returns it formatted (table, csv, jsonl or json)."""
    return asyncio.run(run_sql_async(
        sql, db_path=db_path, nats_url=nats_url, fmt=fmt, limit=limit, timeout_s=timeout_s,
        wait_seq=wait_seq, wait_timeout_s=wait_timeout_s, subject_prefix=subject_prefix,
        limits=limits, nats_options=nats_options))


async def run_sql_async(sql: str, *, db_path: Path, nats_url: str | None = None,
                        fmt: str = "table", limit: int = DEFAULT_LIMIT,
                        timeout_s: float = DEFAULT_TIMEOUT_S, wait_seq: int | None = None,
                        wait_timeout_s: float = 10.0, subject_prefix: str = SQL_SUBJECT_PREFIX,
                        limits: SqlLimits = DEFAULT_LIMITS,
                        nats_options: NatsOptions | None = None) -> str:
    """``run_sql`` for callers already inside an event loop."""
    if fmt not in FORMATS:
        raise QueryRefused(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    result = await query_async(sql, db_path=db_path, nats_url=nats_url, limit=limit,
                               timeout_s=timeout_s, wait_seq=wait_seq,
                               wait_timeout_s=wait_timeout_s, subject_prefix=subject_prefix,
                               limits=limits, nats_options=nats_options)
    return format_result(result, fmt)


def query(sql: str, *, db_path: Path, nats_url: str | None = None,
          limit: int = DEFAULT_LIMIT, timeout_s: float = DEFAULT_TIMEOUT_S,
          wait_seq: int | None = None, wait_timeout_s: float = 10.0,
          subject_prefix: str = SQL_SUBJECT_PREFIX,
          limits: SqlLimits = DEFAULT_LIMITS,
          nats_options: NatsOptions | None = None, remote_first: bool = False) -> QueryResult:
    """Runs one read-only query and returns at most ``limit`` of its rows."""
    return asyncio.run(query_async(sql, db_path=db_path, nats_url=nats_url, limit=limit,
                                   timeout_s=timeout_s, wait_seq=wait_seq,
                                   wait_timeout_s=wait_timeout_s,
                                   subject_prefix=subject_prefix, limits=limits,
                                   nats_options=nats_options, remote_first=remote_first))


async def query_async(sql: str, *, db_path: Path, nats_url: str | None = None,
                      limit: int = DEFAULT_LIMIT, timeout_s: float = DEFAULT_TIMEOUT_S,
                      wait_seq: int | None = None, wait_timeout_s: float = 10.0,
                      subject_prefix: str = SQL_SUBJECT_PREFIX,
                      limits: SqlLimits = DEFAULT_LIMITS,
                      nats_options: NatsOptions | None = None,
                      remote_first: bool = False) -> QueryResult:
    """The file when it is free, else the running service that holds it (connecting with
    ``nats_options``: TLS, credentials, inbox prefix); ``remote_first``: the service at
    ``nats_url`` whatever the file (a server named on purpose, not the local one)."""
    def on_file(db: ReadModelDb, watch: QueryWatch) -> QueryResult:
        return execute_query(db, sql, limit, watch=watch)

    local, url = await _file_or_owner(
        partial(_on_file, db_path, limits, timeout_s, wait_seq, on_file), nats_url,
        remote_first)
    if local is not None:
        return local
    request = {"sql": sql, "limit": limit, "timeout_s": timeout_s, "wait_seq": wait_seq,
               "wait_timeout_s": wait_timeout_s}
    return QueryResult.from_dict(await _ask(url, f"{subject_prefix}.query", request,
                                            _budget(limits, timeout_s, wait_seq, wait_timeout_s),
                                            nats_options))


def stream_sql(sql: str, out: TextIO, fmt: str, *, db_path: Path, nats_url: str | None = None,
               limit: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
               wait_seq: int | None = None, wait_timeout_s: float = 10.0,
               subject_prefix: str = SQL_SUBJECT_PREFIX,
               limits: SqlLimits = DEFAULT_LIMITS,
               nats_options: NatsOptions | None = None,
               remote_first: bool = False) -> StreamSummary:
    """Writes every row of a query (or the first ``limit``) to ``out`` as ``csv``, ``jsonl`` or
    ``json``, from the file when it is free, else streamed by the running service."""
    return asyncio.run(stream_sql_async(
        sql, out, fmt, db_path=db_path, nats_url=nats_url, limit=limit, timeout_s=timeout_s,
        wait_seq=wait_seq, wait_timeout_s=wait_timeout_s, subject_prefix=subject_prefix,
        limits=limits, nats_options=nats_options, remote_first=remote_first))


async def stream_sql_async(sql: str, out: TextIO, fmt: str, *, db_path: Path,
                           nats_url: str | None = None, limit: int | None = None,
                           timeout_s: float = DEFAULT_TIMEOUT_S, wait_seq: int | None = None,
                           wait_timeout_s: float = 10.0, subject_prefix: str = SQL_SUBJECT_PREFIX,
                           limits: SqlLimits = DEFAULT_LIMITS,
                           nats_options: NatsOptions | None = None,
                           remote_first: bool = False) -> StreamSummary:
    """``stream_sql`` for callers already inside an event loop (``remote_first`` as for
    ``query_async``)."""
    if fmt not in STREAM_FORMATS:
        raise QueryRefused(f"cannot stream {fmt!r}: use one of {', '.join(STREAM_FORMATS)}")
    writer = RowWriter(fmt, out)

    def on_file(db: ReadModelDb, watch: QueryWatch) -> StreamSummary:
        return write_local(db, sql, watch, writer, limit)

    local, url = await _file_or_owner(
        partial(_on_file, db_path, limits, timeout_s, wait_seq, on_file), nats_url,
        remote_first)
    if local is not None:
        return local
    request = {"sql": sql, "limit": limit, "timeout_s": timeout_s, "wait_seq": wait_seq,
               "wait_timeout_s": wait_timeout_s}
    async with _connected(url, nats_options) as link:
        return await link.unless_lost(receive_stream(
            link.nc, f"{subject_prefix}.query", request, writer,
            _budget(limits, timeout_s, wait_seq, wait_timeout_s)), lambda: (
                f" (after {writer.count} rows: the output is incomplete)" if writer.count else ""))


def _on_file(db_path: Path, limits: SqlLimits, timeout_s: float, wait_seq: int | None,
             work: Callable[[ReadModelDb, QueryWatch], T]) -> T:
    """Opens the file read-only, capped by ``limits``, and runs ``work`` on it; a starting
    ``runlog up`` that waits for the file stops the query."""
    db = ReadModelDb.open_reader(db_path, limits)
    try:
        if wait_seq is not None:
            position = min(db.positions().values(), default=0)
            if position < wait_seq:
                raise WaitTimeout(f"read models in {db_path} are at seq {position}, not "
                                  f"{wait_seq}, and no running runlog projects into them")
        return work(db, QueryWatch(limits.timeout(timeout_s), yield_to=_yields_to(db_path)))
    finally:
        db.close()


def _yields_to(db_path: Path) -> Callable[[], str | None]:
    def starting_writer() -> str | None:
        pid = writer_waiting(db_path)
        return None if pid is None else (
            f"runlog up (pid {pid}) is starting and needs {db_path.name}; run the query again "
            "and the service will answer it")
    return starting_writer


async def _file_or_owner(work: Callable[[], T], nats_url: str | None, remote_first: bool
                         ) -> tuple[T | None, str]:
    """``work`` done on the local file (in a thread), or None and the URL of the service to
    ask instead: the one holding the file, or the one at ``nats_url`` before any file
    when ``remote_first`` (a server named on purpose)."""
    if remote_first and nats_url is not None:
        return None, nats_url
    try:
        return await asyncio.to_thread(work), ""
    except DatabaseBusy as busy:
        return None, _owner_url(busy, nats_url)


def _owner_url(busy: DatabaseBusy, nats_url: str | None) -> str:
    if nats_url is None:
        raise QueryUnavailable(f"{busy}, and no running runlog is known to answer for it "
                               "(is `runlog up` still starting? try again)") from None
    return nats_url


def _budget(limits: SqlLimits, timeout_s: float, wait_seq: int | None,
            wait_timeout_s: float) -> float:
    """How long a client waits for the owner: the capped query time, any wait, and a margin."""
    wait = limits.timeout(wait_timeout_s) if wait_seq is not None else 0.0
    return limits.timeout(timeout_s) + wait + 5.0


def export(name: str, *, db_path: Path, nats_url: str | None = None, fmt: str = "parquet",
           subject_prefix: str = SQL_SUBJECT_PREFIX, limits: SqlLimits = DEFAULT_LIMITS,
           nats_options: NatsOptions | None = None, remote_first: bool = False) -> Path:
    """Writes a consistent snapshot under ``<data dir>/snapshots/`` and returns its path
    (the serving process's data directory when the service writes it)."""
    return asyncio.run(export_async(name, db_path=db_path, nats_url=nats_url, fmt=fmt,
                                    subject_prefix=subject_prefix, limits=limits,
                                    nats_options=nats_options, remote_first=remote_first))


async def export_async(name: str, *, db_path: Path, nats_url: str | None = None,
                       fmt: str = "parquet", subject_prefix: str = SQL_SUBJECT_PREFIX,
                       limits: SqlLimits = DEFAULT_LIMITS,
                       nats_options: NatsOptions | None = None,
                       remote_first: bool = False) -> Path:
    """``export`` for callers already inside an event loop (``remote_first`` as for
    ``query_async``)."""
    dest = snapshot_path(db_path, name, fmt)
    if fmt not in SNAPSHOT_FORMATS:
        raise QueryRefused(f"unknown snapshot format {fmt!r}")
    local, url = await _file_or_owner(partial(_export_file, db_path, dest, fmt, limits),
                                      nats_url, remote_first)
    if local is not None:
        return local
    result = await _ask(url, f"{subject_prefix}.export", {"name": name, "format": fmt},
                        limits.max_timeout_s + 5.0, nats_options)
    return Path(result["path"])


async def query_over_nats(nc: Client, sql: str, *, limit: int = DEFAULT_LIMIT,
                          timeout_s: float = DEFAULT_TIMEOUT_S, wait_seq: int | None = None,
                          wait_timeout_s: float = 10.0,
                          subject_prefix: str = SQL_SUBJECT_PREFIX) -> QueryResult:
    """Asks whichever process serves the read models (``runlog.sql.query``), never the file;
    with ``wait_seq``, once they include that stream sequence (read your writes)."""
    request = {"sql": sql, "limit": limit, "timeout_s": timeout_s, "wait_seq": wait_seq,
               "wait_timeout_s": wait_timeout_s}
    budget = timeout_s + (wait_timeout_s if wait_seq is not None else 0.0) + 5.0
    return QueryResult.from_dict(await _request(nc, f"{subject_prefix}.query", request, budget))


def _export_file(db_path: Path, dest: Path, fmt: str, limits: SqlLimits) -> Path:
    """A snapshot from the file itself, bounded as the service bounds one (and giving the file
    up to a starting ``runlog up``)."""
    db = ReadModelDb.open_reader(db_path, limits)
    try:
        watch = QueryWatch(limits.max_timeout_s, yield_to=_yields_to(db_path))
        return export_snapshot(db, dest, fmt, watch, limits)
    finally:
        db.close()


async def replay(store: JetStreamEventStore, *, db_path: Path, until_seq: int | None = None,
                 until: datetime | None = None, progress: Progress | None = None,
                 subject_prefix: str = SQL_SUBJECT_PREFIX) -> ReplayResult:
    """Rebuilds the read models from the log.

    Without a bound it replaces the live file; when a running ``runlog up`` holds that
    file, it asks that process (over the store's NATS connection) to rebuild and swap
    it. With ``until_seq`` or ``until`` it builds the past into its own file
    (``asof-...duckdb`` beside the live one) and never touches the live file.
    ``progress(position, target)`` is called after each batch.
    """
    bounded = until_seq is not None or until is not None
    if not bounded and _held(db_path):
        result = await _request(store.nc, f"{subject_prefix}.rebuild", {}, _REBUILD_TIMEOUT_S)
        return ReplayResult(Path(result["path"]), int(result["position"]),
                            float(result["seconds"]))
    dest = as_of_path(db_path, until_seq, until) if bounded else db_path
    return await build_read_models(store, dest, until_seq, until, progress)


def _held(db_path: Path) -> bool:
    try:
        ensure_not_held(db_path)
    except ReplayRefused:
        return True
    return False


def parse_until(text: str) -> datetime:
    """Reads ``--until``: an ISO 8601 time (UTC when it names no offset)."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise QueryRefused(f"--until {text!r} is not an ISO 8601 time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def _ask(nats_url: str, subject: str, body: dict[str, Any], timeout_s: float,
               nats_options: NatsOptions | None) -> dict[str, Any]:
    async with _connected(nats_url, nats_options) as link:
        return await link.unless_lost(_request(link.nc, subject, body, timeout_s))


class _Link:
    """A one-shot client's connection, and whether it has been lost (the server went away)."""

    def __init__(self, nats_url: str) -> None:
        self.nats_url = nats_url
        self.nc: Client
        self.lost = asyncio.Event()

    async def on_lost(self) -> None:
        """nats-py's disconnected and closed callback."""
        self.lost.set()

    async def unless_lost(self, waiting: Coroutine[Any, Any, T],
                          so_far: Callable[[], str] = lambda: "") -> T:
        """``waiting``'s result; ``QueryUnavailable`` at once if the connection is lost first
        (without this, a request waits out its whole budget for a reply that cannot come).
        ``so_far`` adds what was received before, to the message."""
        answer = asyncio.ensure_future(waiting)
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait([answer, lost], return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        broken = answer.done() and not answer.cancelled() and isinstance(
            answer.exception(), nats.errors.Error)  # the connection closed under the request
        if broken or not answer.done():
            answer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ProjectionError, nats.errors.Error):
                await answer
            raise QueryUnavailable(f"the connection to NATS at {self.nats_url} was lost before "
                                   f"the answer came (did runlog up stop?){so_far()}")
        return answer.result()


@contextlib.asynccontextmanager
async def _connected(nats_url: str, nats_options: NatsOptions | None
                     ) -> AsyncIterator[_Link]:
    link = _Link(nats_url)

    async def quiet(error: Exception) -> None:
        """Connection errors are reported once, below, not logged by the client."""

    try:
        link.nc = await nats.connect(server_list(nats_url), connect_timeout=2,
                                     allow_reconnect=False, max_reconnect_attempts=0,
                                     error_cb=quiet, disconnected_cb=link.on_lost,
                                     closed_cb=link.on_lost, **(nats_options or {}))
    except (OSError, TimeoutError, nats.errors.Error) as error:
        raise QueryUnavailable(f"cannot reach NATS at {nats_url}: "
                               f"{str(error) or type(error).__name__}") from None
    try:
        yield link
    finally:
        with contextlib.suppress(nats.errors.Error):
            await link.nc.close()


async def _request(nc: Client, subject: str, body: dict[str, Any], timeout_s: float
                   ) -> dict[str, Any]:
    try:
        msg = await nc.request(subject, json.dumps(body).encode(), timeout=timeout_s)
    except nats.errors.NoRespondersError:
        raise QueryUnavailable(f"no running runlog answers on {subject}") from None
    except (nats.errors.TimeoutError, TimeoutError):
        raise QueryUnavailable(f"no answer on {subject} within {timeout_s:g} s") from None
    except nats.errors.Error as error:
        raise QueryUnavailable(f"{subject}: {error}") from None
    return _result(msg.data)


def _result(data: bytes) -> dict[str, Any]:
    try:
        reply = json.loads(data)
    except ValueError:
        raise ProjectionError("the running runlog sent an unreadable reply") from None
    if reply.get("ok"):
        result: dict[str, Any] = reply["result"]
        return result
    error = reply.get("error") or {}
    raise CODES.get(error.get("code", ""), ProjectionError)(
        str(error.get("message", "the running runlog refused the request")))
