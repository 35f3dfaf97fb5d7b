"""``runlog sql QUERY``: a read-only query on the read models, with or without `runlog up`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from projections import FORMATS, run_sql
from services.settings import Settings

from .connect import running_nats_url_or_none

__all__ = ["add_parser", "run"]


def add_parser(verbs: Any) -> None:
    """Registers the verb."""
    parser = verbs.add_parser(
        "sql", help="run a read-only query (SELECT, WITH, EXPLAIN, DESCRIBE, SHOW, SUMMARIZE)")
    parser.add_argument("query", help='e.g. "SELECT state, count(*) FROM runs GROUP BY state"')
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
    parser.add_argument("--limit", type=int, default=1000, help="at most this many rows")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before it is cut")
    parser.add_argument("--wait-seq", type=int, default=None, metavar="N",
                        help="first wait until every projection has applied sequence N")
    parser.add_argument("--db", type=Path, default=None,
                        help="another read-model file (e.g. one `runlog replay --until-seq` built)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Prints the result; errors are one line (a RunlogError)."""
    print(run_sql(args.query, db_path=args.db or settings.duckdb_path,
                  nats_url=None if args.db else running_nats_url_or_none(settings),
                  fmt=args.format, limit=args.limit, timeout_s=args.timeout,
                  wait_seq=args.wait_seq))
    return 0
