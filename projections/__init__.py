"""The read side: DuckDB read models, the projector runtime, replay and time travel, SQL.

Entry points: ``ReadSide`` (run by ``runlog up``: projector plus the ``runlog.sql.*``
responder), and for the CLI ``run_sql``, ``export``, ``replay`` and ``parse_until``.
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
)
from .database import ReadModelDb
from .errors import (
    BoundOutsideLog,
    DatabaseBusy,
    DatabaseMissing,
    ProjectionError,
    ProjectionHalted,
    QueryError,
    QueryRefused,
    QueryTimeout,
    QueryUnavailable,
    ReplayRefused,
    SchemaMismatch,
    WaitTimeout,
)
from .query import FORMATS, QueryResult, check_read_only, execute_query, format_result
from .replay import ReplayResult, as_of_path, build_read_models, check_bounds
from .runtime import Projector, ProjectorConfig, wait_for_checkpoint
from .schema import SCHEMA_VERSION
from .service import SQL_QUEUE, SQL_SUBJECT_PREFIX, ReadSide

__all__ = [
    "FORMATS",
    "SCHEMA_VERSION",
    "SQL_QUEUE",
    "SQL_SUBJECT_PREFIX",
    "BoundOutsideLog",
    "DatabaseBusy",
    "DatabaseMissing",
    "ProjectionError",
    "ProjectionHalted",
    "Projector",
    "ProjectorConfig",
    "QueryError",
    "QueryRefused",
    "QueryResult",
    "QueryTimeout",
    "QueryUnavailable",
    "ReadModelDb",
    "ReadSide",
    "ReplayRefused",
    "ReplayResult",
    "SchemaMismatch",
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
    "wait_for_checkpoint",
]
