"""The bodies of the ``runlog.sql.*`` requests and replies, as the read side reads and sends them.

The read side parses every request with these models (``parse_request``), and the
AsyncAPI document shows their JSON schemas, so what is documented is what is served.
Replies are ``{"ok": true, "result": ...}``, the parts of a streamed query, or
``{"ok": false, "error": {"code", "message"}}`` with one of ``REPLY_ERROR_CODES``.
"""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from .errors import CODES, QueryRefused
from .query import DEFAULT_LIMIT

__all__ = [
    "REPLY_ERROR_CODES",
    "ErrorReply",
    "ExportReply",
    "ExportRequest",
    "QueryReply",
    "QueryRequest",
    "RebuildReply",
    "RebuildRequest",
    "StreamEndReply",
    "StreamPart",
    "parse_request",
]

MAX_REPLY_ROWS = 100_000
"""Most rows of an answer in one reply (which is cut to NATS's max payload anyway); a
streamed answer has no such cap."""

REPLY_ERROR_CODES = tuple(sorted({*CODES, "invalid_json", "unavailable", "internal"}))
"""Every code an ``ok: false`` reply of the read side may carry."""


class _Request(BaseModel):
    # Strict: a number given as a string or a bool is refused, not guessed at.
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class QueryRequest(_Request):
    """Run one read-only statement (SELECT, WITH, EXPLAIN, DESCRIBE, SHOW, SUMMARIZE, PIVOT)."""

    sql: str = Field(description="the statement")
    limit: int | None = Field(
        None, ge=0, description=f"most rows: default {DEFAULT_LIMIT:,} in one reply (at most "
                                f"{MAX_REPLY_ROWS:,}); with stream, every row unless given")
    timeout_s: float | None = Field(
        None, ge=0, description="statement time limit in seconds; waiting for a query worker "
                                "counts against it (capped by RUNLOG_SQL_MAX_TIMEOUT_S)")
    wait_seq: int | None = Field(None, ge=0, description="first wait until the read models "
                                                         "include this stream sequence "
                                                         "(read your writes)")
    wait_timeout_s: float | None = Field(None, ge=0, description="how long to wait for wait_seq "
                                                                 "(default 10, capped alike)")
    stream: bool = Field(False, description="send every row in acknowledged parts (each a "
                                            "StreamPart with a reply subject to acknowledge to "
                                            "with an empty message), then a StreamEndReply")


class ExportRequest(_Request):
    """Write a consistent snapshot of the read models under ``<data dir>/snapshots/``, bounded
    like a query (its turn, RUNLOG_SQL_MAX_TIMEOUT_S, the memory caps, a stop)."""

    name: str | None = Field(None, description="the snapshot's name, 1-128 of [A-Za-z0-9_-] "
                                               "(default: the time)")
    format: Literal["parquet", "duckdb"] = Field("parquet", description="Parquet per table, "
                                                 "or one DuckDB file")


class RebuildRequest(_Request):
    """Rebuild the live read models from the log while serving, then swap them in."""


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReplyError(_Reply):
    """Why nothing was answered."""

    code: str = Field(description="what kind of failure",
                      json_schema_extra={"enum": list(REPLY_ERROR_CODES)})
    message: str = Field(description="one line, fit for a terminal")


class ErrorReply(_Reply):
    """A refused or failed request; nothing was written."""

    ok: Literal[False]
    error: ReplyError


class QueryResultBody(_Reply):
    """The rows of one query, at most ``limit``."""

    columns: list[str]
    types: list[str] = Field(description="DuckDB type of each column")
    rows: list[list[JsonValue]] = Field(description="each row a list in column order")
    truncated: bool = Field(description="more rows existed than were sent")
    position: int | None = Field(description="the read models' checkpoint the rows reflect")


class QueryReply(_Reply):
    """The answer to a query without ``stream``."""

    ok: Literal[True]
    result: QueryResultBody


class StreamPart(_Reply):
    """One part of a streamed answer; acknowledge it (empty message to its reply subject)."""

    ok: Literal[True]
    part: int = Field(ge=1, description="1, 2, ...")
    columns: list[str] | None = Field(None, description="in the first part only")
    types: list[str] | None = Field(None, description="in the first part only")
    rows: list[list[JsonValue]]


class StreamEnd(_Reply):
    """What a streamed answer came to."""

    done: Literal[True]
    rows: int = Field(description="rows sent in all parts")
    truncated: bool = Field(description="more rows existed than limit let through")
    position: int | None
    columns: list[str]
    types: list[str]


class StreamEndReply(_Reply):
    """The last message of a streamed answer."""

    ok: Literal[True]
    result: StreamEnd


class ExportResult(_Reply):
    """Where the snapshot was written."""

    path: str


class ExportReply(_Reply):
    """The answer to an export."""

    ok: Literal[True]
    result: ExportResult


class RebuildResult(_Reply):
    """The rebuilt live file."""

    path: str
    position: int = Field(description="the last stream sequence the file includes")
    seconds: float


class RebuildReply(_Reply):
    """The answer to a rebuild."""

    ok: Literal[True]
    result: RebuildResult


R = TypeVar("R", bound="_Request")


def parse_request(model: type[R], body: dict[str, object]) -> R:
    """``body`` read as ``model``, or ``QueryRefused`` naming the first bad field in one line."""
    try:
        return model.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise QueryRefused(f"{where}: {first['msg']}") from None
