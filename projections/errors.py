"""Read-side errors: what DuckDB and NATS failures become once they leave ``projections``."""

from __future__ import annotations

from services.errors import RunlogError

__all__ = [
    "CODES",
    "BoundOutsideLog",
    "DatabaseBusy",
    "DatabaseMissing",
    "DatabaseStrained",
    "ProjectionError",
    "ProjectionHalted",
    "QueryError",
    "QueryInterrupted",
    "QueryRefused",
    "QueryTimeout",
    "QueryUnavailable",
    "ReplayRefused",
    "SchemaMismatch",
    "WaitTimeout",
]


class ProjectionError(RunlogError):
    """Base of every read-side error; its message is one line, fit for a terminal."""

    code = "read_side_error"
    """What a NATS reply names the error (``{"ok": false, "error": {"code": ...}}``)."""


class ProjectionHalted(ProjectionError):
    """A projector in strict mode met an event it could not apply, or the database failed."""

    code = "projection_halted"

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


class SchemaMismatch(ProjectionError):
    """The read-model file was built by a different schema version: rebuild it."""

    code = "schema_mismatch"


class DatabaseBusy(ProjectionError):
    """Another process holds the read-model file."""

    code = "unavailable"


class DatabaseStrained(ProjectionError):
    """A batch failed for want of memory under the database's memory limit: retry it later."""

    code = "unavailable"


class DatabaseMissing(ProjectionError):
    """There is no read-model file where one was expected."""

    code = "not_found"


class QueryError(ProjectionError):
    """A read-only query failed; ``code`` says why."""

    code = "query_failed"


class QueryRefused(QueryError):
    """The statement is not a single read-only statement."""

    code = "query_refused"


class QueryTimeout(QueryError):
    """The query ran past its time limit and was interrupted."""

    code = "query_timeout"


class QueryInterrupted(QueryError):
    """The query was stopped before its end: the service is stopping, the projector needed
    the memory, or a starting service needed the file."""

    code = "query_interrupted"


class QueryUnavailable(QueryError):
    """Neither the file nor a running service could answer."""

    code = "unavailable"


class WaitTimeout(QueryError):
    """The read models did not reach the awaited stream sequence in time."""

    code = "wait_timeout"


class ReplayRefused(ProjectionError):
    """A rebuild cannot swap the live file (a service holds it)."""

    code = "replay_refused"


class BoundOutsideLog(ReplayRefused):
    """A time-travel bound names a point the log does not hold (before its first event or
    after its last): that state cannot be built."""

    code = "bound_outside_log"


CODES: dict[str, type[ProjectionError]] = {
    cls.code: cls
    for cls in (ProjectionError, ProjectionHalted, SchemaMismatch, DatabaseMissing, QueryError,
                QueryRefused, QueryTimeout, QueryInterrupted, QueryUnavailable, WaitTimeout,
                ReplayRefused, BoundOutsideLog)
}
"""Error class by reply code, so a client raises what the server raised."""
