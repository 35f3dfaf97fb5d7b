"""``runlog replay``: rebuild the read models from the log, or build the past into a file."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any

from projections import parse_until, replay
from services.bootstrap import connect_store, nats_server
from services.lockfile import DataDirLock
from services.settings import Settings

from .connect import running_nats_url_or_none

__all__ = ["add_parser", "run"]


def add_parser(verbs: Any) -> None:
    """Registers the verb."""
    parser = verbs.add_parser(
        "replay", help="rebuild the read models from the log (or the past, with --until*)")
    bound = parser.add_mutually_exclusive_group()
    bound.add_argument("--until-seq", type=int, default=None, metavar="N",
                       help="build the state as of stream sequence N into a separate file")
    bound.add_argument("--until", default=None, metavar="TIME",
                       help="build the state as of an ISO 8601 time into a separate file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


async def _replay(url: str, settings: Settings, args: argparse.Namespace) -> str:
    nc, store = await connect_store(url, settings, "runlog-replay")
    try:
        result = await replay(store, db_path=settings.duckdb_path, until_seq=args.until_seq,
                              until=parse_until(args.until) if args.until else None,
                              progress=not args.quiet)
    finally:
        await nc.close()
    return result.describe()


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Rebuilds against the running service's NATS, or an embedded one when none runs."""
    url = running_nats_url_or_none(settings)
    with contextlib.ExitStack() as stack:
        if url is None:
            stack.enter_context(DataDirLock(settings.data_dir))
            url = stack.enter_context(nats_server(settings))
        print(asyncio.run(_replay(url, settings, args)))
    return 0
