"""The read side: DuckDB read models, the projector runtime, replay and time travel, SQL.

Entry points: ``ReadSide`` (run by ``runlog up``: projector plus the ``runlog.sql.*``
responder), and for the CLI ``query``, ``stream_sql``, ``export``, ``replay`` and
``parse_until``.
Nothing here connects at import time, and nothing is imported before it is asked for:
a process that needs one part (a replay's applier) does not load the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from services.lazy import lazy_names

if TYPE_CHECKING:
    from .api import (
        export,
        export_async,
        parse_until,
        query,
        query_async,
        query_over_nats,
        replay,
        run_sql,
        run_sql_async,
        stream_sql,
        stream_sql_async,
    )
    from .database import ReadModelDb
    from .errors import (
        BoundOutsideLog,
        DatabaseBusy,
        DatabaseMissing,
        ProjectionError,
        ProjectionHalted,
        QueryError,
        QueryInterrupted,
        QueryRefused,
        QueryTimeout,
        QueryUnavailable,
        ReplayRefused,
        SchemaMismatch,
        WaitTimeout,
    )
    from .limits import DEFAULT_LIMITS, SqlLimits
    from .output import STREAM_FORMATS, RowWriter
    from .query import FORMATS, QueryResult, check_read_only, execute_query, format_result
    from .replay import ReplayResult, as_of_path, build_read_models, check_bounds
    from .runtime import Projector, ProjectorConfig, wait_for_checkpoint
    from .schema import SCHEMA_VERSION
    from .service import SQL_QUEUE, SQL_SUBJECT_PREFIX, ReadSide
    from .sql_stream import StreamSummary

_HOMES = {
    "BoundOutsideLog": "errors",
    "DEFAULT_LIMITS": "limits",
    "DatabaseBusy": "errors",
    "DatabaseMissing": "errors",
    "FORMATS": "query",
    "ProjectionError": "errors",
    "ProjectionHalted": "errors",
    "Projector": "runtime",
    "ProjectorConfig": "runtime",
    "QueryError": "errors",
    "QueryInterrupted": "errors",
    "QueryRefused": "errors",
    "QueryResult": "query",
    "QueryTimeout": "errors",
    "QueryUnavailable": "errors",
    "ReadModelDb": "database",
    "ReadSide": "service",
    "ReplayRefused": "errors",
    "ReplayResult": "replay",
    "RowWriter": "output",
    "SCHEMA_VERSION": "schema",
    "SQL_QUEUE": "service",
    "SQL_SUBJECT_PREFIX": "service",
    "STREAM_FORMATS": "output",
    "SchemaMismatch": "errors",
    "SqlLimits": "limits",
    "StreamSummary": "sql_stream",
    "WaitTimeout": "errors",
    "as_of_path": "replay",
    "build_read_models": "replay",
    "check_bounds": "replay",
    "check_read_only": "query",
    "execute_query": "query",
    "export": "api",
    "export_async": "api",
    "format_result": "query",
    "parse_until": "api",
    "query": "api",
    "query_async": "api",
    "query_over_nats": "api",
    "replay": "api",
    "run_sql": "api",
    "run_sql_async": "api",
    "stream_sql": "api",
    "stream_sql_async": "api",
    "wait_for_checkpoint": "runtime",
}
"""Each public name and the module it lives in."""

__all__ = [
    "DEFAULT_LIMITS",
    "FORMATS",
    "SCHEMA_VERSION",
    "SQL_QUEUE",
    "SQL_SUBJECT_PREFIX",
    "STREAM_FORMATS",
    "BoundOutsideLog",
    "DatabaseBusy",
    "DatabaseMissing",
    "ProjectionError",
    "ProjectionHalted",
    "Projector",
    "ProjectorConfig",
    "QueryError",
    "QueryInterrupted",
    "QueryRefused",
    "QueryResult",
    "QueryTimeout",
    "QueryUnavailable",
    "ReadModelDb",
    "ReadSide",
    "ReplayRefused",
    "ReplayResult",
    "RowWriter",
    "SchemaMismatch",
    "SqlLimits",
    "StreamSummary",
    "WaitTimeout",
    "as_of_path",
    "build_read_models",
    "check_bounds",
    "check_read_only",
    "execute_query",
    "export",
    "export_async",
    "format_result",
    "parse_until",
    "query",
    "query_async",
    "query_over_nats",
    "replay",
    "run_sql",
    "run_sql_async",
    "stream_sql",
    "stream_sql_async",
    "wait_for_checkpoint",
]


if not TYPE_CHECKING:
    # Two entry points share their names with submodules (``query``, ``replay``), and
    # loading a submodule binds it to the package's attribute of that name. So the
    # submodules are loaded first, and the names then bound to the entry points, which
    # load ``api`` (and NATS with it) only when called.
    importlib.import_module(".query", __name__)
    importlib.import_module(".replay", __name__)

    def query(*args: Any, **kwargs: Any) -> Any:
        """``projections.api.query``."""
        return importlib.import_module(".api", __name__).query(*args, **kwargs)

    def replay(*args: Any, **kwargs: Any) -> Any:
        """``projections.api.replay``."""
        return importlib.import_module(".api", __name__).replay(*args, **kwargs)


__getattr__ = lazy_names(__name__, _HOMES)
