"""``runlog sql QUERY``: a read-only query on the read models, with or without `runlog up`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from .context import RunlogCommand, state
from .output import emit_rows, output_option, say

if TYPE_CHECKING:
    from projections import QueryResult

__all__ = ["TABLE_LIMIT", "command", "print_result", "run_query", "stream_query"]

TABLE_LIMIT = 1000
"""Rows a table shows unless --limit says otherwise."""


@click.command("sql", cls=RunlogCommand)
@click.argument("query")
@output_option(aliases=("--format",))
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help=f"at most this many rows [default: {TABLE_LIMIT} in a table; every row in "
                   "csv, json and jsonl]")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0,
              help="seconds before the query is cut")
@click.option("--wait-seq", type=click.IntRange(min=0), default=None, metavar="N",
              help="first wait until every projection has applied stream sequence N")
@click.option("--db", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="another read-model file (e.g. one `runlog replay --until-seq` built)")
def command(query: str, output: str, limit: int | None, timeout: float, wait_seq: int | None,
            db: Path | None) -> int:
    """Run a read-only query (SELECT, WITH, EXPLAIN, DESCRIBE, SHOW, SUMMARIZE, PIVOT).

    QUERY is e.g. "SELECT state, count(*) FROM runs GROUP BY state". csv, json and jsonl
    output every row; a limit that cuts rows is said on stderr, and exits 1 unless
    --limit asked for it.
    """
    if output in ("csv", "json", "jsonl"):
        count, truncated = stream_query(query, output, limit=limit, timeout_s=timeout,
                                        wait_seq=wait_seq, db=db)
    else:
        result = run_query(query, limit=limit or TABLE_LIMIT, timeout_s=timeout,
                           wait_seq=wait_seq, db=db)
        print_result(result, output)
        count, truncated = len(result.rows), result.truncated
    if truncated:
        say(f"limit reached: more rows exist than the {count} printed"
            f"{'' if limit else ' (raise --limit, or -o csv|json|jsonl for every row)'}",
            style="yellow")
    return 1 if truncated and limit is None else 0


def stream_query(sql: str, fmt: str, *, limit: int | None = None, timeout_s: float = 30.0,
                 wait_seq: int | None = None, db: Path | None = None) -> tuple[int, bool]:
    """Writes every row (or ``limit``) to stdout as ``fmt``; returns (rows, cut by the limit)."""
    import sys

    from projections import stream_sql
    from services.read_side import sql_limits

    from .connect import read_side_access

    settings = state().settings()
    summary = stream_sql(sql, sys.stdout, fmt, db_path=db or settings.duckdb_path,
                         **read_side_access(settings, local_only=db is not None),
                         limit=limit, timeout_s=timeout_s, wait_seq=wait_seq,
                         limits=sql_limits(settings))
    return summary.rows, summary.truncated


def run_query(sql: str, *, limit: int = 1000, timeout_s: float = 30.0,
              wait_seq: int | None = None, db: Path | None = None) -> QueryResult:
    """Runs one read-only query on the live read models (or ``db``), wherever they are."""
    from projections import query
    from services.read_side import sql_limits

    from .connect import read_side_access

    settings = state().settings()
    return query(sql, db_path=db or settings.duckdb_path,
                 **read_side_access(settings, local_only=db is not None),
                 limit=limit, timeout_s=timeout_s, wait_seq=wait_seq,
                 limits=sql_limits(settings))


def print_result(result: QueryResult, fmt: str, title: str | None = None) -> None:
    """Prints a query's rows; a table ends with its row count."""
    count = len(result.rows)
    note = f"({count} row{'s' if count != 1 else ''}"
    note += "; limit reached, more rows exist)" if result.truncated else ")"
    if not result.columns and fmt == "table":
        click.echo("(no result)")
        return
    emit_rows(result.columns, result.rows, fmt, title=title, note=note)
