"""``runlog sql QUERY``: a read-only query on the read models, with or without `runlog up`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from .context import RunlogCommand, state
from .output import emit_rows, output_option, say

if TYPE_CHECKING:
    from projections import QueryResult

__all__ = ["command", "print_result", "run_query"]


@click.command("sql", cls=RunlogCommand)
@click.argument("query")
@output_option(aliases=("--format",))
@click.option("--limit", type=click.IntRange(min=1), default=1000, help="at most this many rows")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0,
              help="seconds before the query is cut")
@click.option("--wait-seq", type=click.IntRange(min=0), default=None, metavar="N",
              help="first wait until every projection has applied stream sequence N")
@click.option("--db", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="another read-model file (e.g. one `runlog replay --until-seq` built)")
def command(query: str, output: str, limit: int, timeout: float, wait_seq: int | None,
            db: Path | None) -> int:
    """Run a read-only query (SELECT, WITH, EXPLAIN, DESCRIBE, SHOW, SUMMARIZE).

    QUERY is e.g. "SELECT state, count(*) FROM runs GROUP BY state".
    """
    result = run_query(query, limit=limit, timeout_s=timeout, wait_seq=wait_seq, db=db)
    print_result(result, output)
    return 0


def run_query(sql: str, *, limit: int = 1000, timeout_s: float = 30.0,
              wait_seq: int | None = None, db: Path | None = None) -> QueryResult:
    """Runs one read-only query on the live read models (or ``db``), wherever they are."""
    from projections import query

    from .connect import running_nats_url_or_none

    settings = state().settings()
    return query(sql, db_path=db or settings.duckdb_path,
                 nats_url=None if db else running_nats_url_or_none(settings),
                 limit=limit, timeout_s=timeout_s, wait_seq=wait_seq)


def print_result(result: QueryResult, fmt: str, title: str | None = None) -> None:
    """Prints a query's rows; a table ends with its row count."""
    count = len(result.rows)
    note = f"({count} row{'s' if count != 1 else ''}"
    note += "; limit reached, more rows exist)" if result.truncated else ")"
    if not result.columns and fmt == "table":
        click.echo("(no result)")
        return
    emit_rows(result.columns, result.rows, fmt, title=title, note=note)
    if result.truncated and fmt != "table":
        say(f"limit reached: more rows exist than the {count} printed (raise --limit)",
            style="yellow")
