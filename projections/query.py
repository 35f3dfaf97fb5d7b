"""Read-only SQL on the read models: the guard, execution with limits, and output formats.

A statement is accepted only when DuckDB's own parser says it is one ``SELECT`` (which
covers ``WITH``, ``DESCRIBE``, ``SHOW``, ``SUMMARIZE``, ``FROM ...`` and ``VALUES``) or an
``EXPLAIN`` of one. Defence in depth: it then runs inside a ``READ ONLY`` transaction,
on a database opened with external access disabled (no files, no extensions), with a
row limit and a timeout that interrupts it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from .database import ReadModelDb
from .errors import QueryError, QueryRefused, QueryTimeout

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_TIMEOUT_S",
    "FORMATS",
    "MAX_SQL_CHARS",
    "QueryResult",
    "check_read_only",
    "execute_query",
    "format_result",
]

DEFAULT_LIMIT = 1000
DEFAULT_TIMEOUT_S = 10.0
MAX_SQL_CHARS = 64 * 1024
FORMATS = ("table", "csv", "json")

_ALLOWED = frozenset({duckdb.StatementType.SELECT})
_EXPLAIN_PREFIX = re.compile(r"^\s*EXPLAIN(\s+ANALY[SZ]E)?\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Rows of one query, JSON-ready, with where in the log they stand."""

    columns: list[str]
    types: list[str]
    rows: list[list[Any]]
    truncated: bool
    position: int | None
    """The read models' checkpoint (stream sequence) the rows reflect."""

    def to_dict(self) -> dict[str, Any]:
        """Returns the reply form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QueryResult:
        """Reads the reply form."""
        return cls(list(data["columns"]), list(data["types"]), list(data["rows"]),
                   bool(data["truncated"]), data.get("position"))


def check_read_only(sql: str) -> str:
    """Returns the one read-only statement in ``sql`` or raises ``QueryRefused``."""
    if len(sql) > MAX_SQL_CHARS:
        raise QueryRefused(f"query is longer than {MAX_SQL_CHARS} characters")
    statement = _single_statement(sql)
    if statement.type == duckdb.StatementType.EXPLAIN:
        # EXPLAIN ANALYZE runs its statement: what it explains must be read-only too.
        inner = _EXPLAIN_PREFIX.sub("", statement.query, count=1)
        if _single_statement(inner).type not in _ALLOWED:
            raise QueryRefused("EXPLAIN is allowed for read-only statements only")
        return str(statement.query).strip().rstrip(";")
    if statement.type not in _ALLOWED:
        raise QueryRefused(f"{statement.type.name} statements are not allowed: only SELECT, "
                           "WITH, EXPLAIN, DESCRIBE, SHOW and SUMMARIZE")
    return str(statement.query).strip().rstrip(";")


def _single_statement(sql: str) -> Any:
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise QueryRefused(_first_line(error)) from None
    if not statements:
        raise QueryRefused("empty query")
    if len(statements) > 1:
        raise QueryRefused("one statement at a time")
    return statements[0]


def execute_query(db: ReadModelDb, sql: str, limit: int = DEFAULT_LIMIT,
                  timeout_s: float = DEFAULT_TIMEOUT_S) -> QueryResult:
    """Runs a guarded statement on its own cursor, read-only, limited and timed."""
    statement = check_read_only(sql)
    cursor = db.cursor()
    fired = threading.Event()

    def interrupt() -> None:
        fired.set()
        cursor.interrupt()

    timer = threading.Timer(timeout_s, interrupt)
    timer.daemon = True
    try:
        cursor.execute("BEGIN TRANSACTION READ ONLY")
        timer.start()
        result = _run(cursor, statement, max(limit, 0))
    except (duckdb.Error, OSError, ValueError) as error:
        # An interrupt surfaces as a DuckDB error, or as an Arrow one mid-stream.
        if fired.is_set():
            raise QueryTimeout(f"query interrupted after {timeout_s:g} s") from None
        raise QueryError(_first_line(error)) from None
    finally:
        timer.cancel()
        _close(cursor)
    return result


def _run(cursor: duckdb.DuckDBPyConnection, statement: str, limit: int) -> QueryResult:
    relation = cursor.sql(statement)
    if relation is None:
        return QueryResult([], [], [], False, _position(cursor))
    columns, types = list(relation.columns), [str(t) for t in relation.types]
    is_json = [t == "JSON" for t in types]
    rows: list[list[Any]] = []
    reader = relation.to_arrow_reader(min(max(limit, 1), 10_000) + 1)
    try:
        for batch in reader:
            rows.extend([_json_cell(v) if j else _jsonable(v)
                         for v, j in zip(row.values(), is_json, strict=True)]
                        for row in batch.to_pylist())
            if len(rows) > limit:
                break
    finally:
        reader.close()
    truncated = len(rows) > limit
    return QueryResult(columns, types, rows[:limit], truncated, _position(cursor))


def _position(cursor: duckdb.DuckDBPyConnection) -> int | None:
    try:
        row = cursor.execute("SELECT min(last_seq) FROM checkpoints").fetchone()
    except duckdb.Error:
        return None
    return int(row[0]) if row and row[0] is not None else None


def _close(cursor: duckdb.DuckDBPyConnection) -> None:
    # The transaction may already be gone (interrupted, or never begun).
    with contextlib.suppress(duckdb.Error):
        cursor.execute("ROLLBACK")
    cursor.close()


def _json_cell(value: Any) -> Any:
    """A JSON column travels as the document itself, not as text holding it."""
    return json.loads(value) if isinstance(value, str) else _jsonable(value)


def _jsonable(value: Any) -> Any:
    """Turns a DuckDB value (through Arrow) into JSON-ready data."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return {str(k): _jsonable(v) for k, v in value}  # a MAP arrives as pairs
        return [_jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return str(value)


def format_result(result: QueryResult, fmt: str = "table") -> str:
    """Renders rows as an aligned table, CSV or JSON (a list of objects)."""
    if fmt == "json":
        return json.dumps([dict(zip(result.columns, row, strict=True)) for row in result.rows],
                          ensure_ascii=False)
    if fmt == "csv":
        return _csv(result)
    if fmt == "table":
        return _table(result)
    raise QueryRefused(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def _cell(value: Any, null: str) -> str:
    if value is None:
        return null
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _csv(result: QueryResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows([_cell(v, "") for v in row] for row in result.rows)
    return out.getvalue().rstrip("\n")


def _table(result: QueryResult, max_width: int = 60) -> str:
    if not result.columns:
        return "(no result)"
    cells = [[_clip(_cell(v, "NULL"), max_width) for v in row] for row in result.rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(result.columns)]
    lines = [_line(result.columns, widths), "  ".join("-" * w for w in widths)]
    lines += [_line(row, widths) for row in cells]
    count = len(result.rows)
    footer = f"({count} row{'s' if count != 1 else ''}"
    footer += "; limit reached, more rows exist)" if result.truncated else ")"
    return "\n".join([*lines, footer])


def _line(values: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()


def _clip(text: str, width: int) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
