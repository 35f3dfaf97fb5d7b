"""``runlog export NAME``: a consistent read-only snapshot of the read models for other tools."""

from __future__ import annotations

import argparse
from typing import Any

from projections import export
from services.settings import Settings

from .connect import running_nats_url_or_none

__all__ = ["add_parser", "run"]


def add_parser(verbs: Any) -> None:
    """Registers the verb."""
    parser = verbs.add_parser(
        "export", help="write a consistent snapshot (Parquet per table, or a DuckDB copy)")
    parser.add_argument("name", help="the snapshot's name, under <data dir>/snapshots/")
    parser.add_argument("--format", choices=("parquet", "duckdb"), default="parquet")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Prints where the snapshot was written."""
    path = export(args.name, db_path=settings.duckdb_path,
                  nats_url=running_nats_url_or_none(settings), fmt=args.format)
    print(path)
    return 0
