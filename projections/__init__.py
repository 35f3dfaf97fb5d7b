"""The read side: DuckDB read models, the projector runtime, replay and time travel, SQL.

Entry points: ``ReadSide`` (run by ``runlog up``: projector plus the ``runlog.sql.*``
responder), and for the CLI ``query``, ``stream_sql``, ``export``, ``replay`` and
``parse_until``.
Nothing here connects at import time.
"""

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
