"""``runlog export NAME``: a consistent read-only snapshot of the read models for other tools."""

from __future__ import annotations

import click

from .context import RunlogCommand, state

__all__ = ["command"]


@click.command("export", cls=RunlogCommand)
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(("parquet", "duckdb")), default="parquet",
              help="Parquet file per table, or one DuckDB copy")
def command(name: str, fmt: str) -> int:
    """Write a consistent snapshot under <data dir>/snapshots/NAME and print its path."""
    from projections import export
    from services.read_side import sql_limits

    from .connect import read_side_access

    settings = state().settings()
    click.echo(export(name, db_path=settings.duckdb_path, **read_side_access(settings),
                      fmt=fmt, limits=sql_limits(settings)))
    return 0
