"""Reading the read models from a verb: the live file, or the running service that holds it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from services.errors import RunlogError

from .context import state

if TYPE_CHECKING:
    from projections import QueryResult

__all__ = ["literal", "query", "rows", "table_exists"]

_SAFE = re.compile(r"^[A-Za-z0-9_.:/-]{1,256}$")


async def query(sql: str, *, limit: int = 10_000, timeout_s: float = 10.0,
                wait_seq: int | None = None, db: Path | None = None,
                whole: bool = True) -> QueryResult:
    """Runs one read-only statement on the live read models (or ``db``).

    ``whole``: a result with more rows than came back (past ``limit``, or past what one
    reply of the service holds) is an error, not a shorter answer; False hands it back
    marked ``truncated`` for the caller to say so.
    """
    from projections import query_async
    from services.read_side import sql_limits

    from .connect import read_side_access

    settings = state().settings()
    result = await query_async(sql, db_path=db or settings.duckdb_path,
                               **read_side_access(settings, local_only=db is not None),
                               limit=limit, timeout_s=timeout_s, wait_seq=wait_seq,
                               limits=sql_limits(settings))
    if whole and result.truncated:
        raise RunlogError(f"only {len(result.rows)} rows of a longer answer came back: "
                          "`runlog sql -o jsonl` streams every row")
    return result


async def rows(sql: str, *, limit: int = 10_000) -> list[dict[str, Any]]:
    """The statement's rows as objects keyed by column."""
    result = await query(sql, limit=limit)
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


async def table_exists(name: str) -> bool:
    """Whether the read models have a table or view of that name (newer ones may not)."""
    found = await rows("SELECT count(*) AS n FROM duckdb_tables() WHERE table_name = "
                       f"{literal(name)} UNION ALL SELECT count(*) FROM duckdb_views() "
                       f"WHERE view_name = {literal(name)}")
    return any(int(r["n"]) for r in found)


def literal(value: str) -> str:
    """A SQL string literal for an id, state or kind given on the command line."""
    if not _SAFE.match(value):
        raise click.BadParameter(f"{value!r} is not an id, state or kind "
                                 "(1-256 of A-Z a-z 0-9 _ . : / -)")
    return "'" + value.replace("'", "''") + "'"
