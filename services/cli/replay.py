"""``runlog replay``: rebuild the read models from the log, or build the past into a file."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from datetime import datetime

import click

from .context import RunlogCommand, state

__all__ = ["command"]


@click.command("replay", cls=RunlogCommand)
@click.option("--until-seq", type=click.IntRange(min=1), default=None, metavar="N",
              help="build the state as of stream sequence N (1 or more) into a separate file")
@click.option("--until", default=None, metavar="TIME",
              help="build the state as of an ISO 8601 time into a separate file")
@click.option("--quiet", is_flag=True, help="no progress bar")
def command(until_seq: int | None, until: str | None, quiet: bool) -> int:
    """Rebuild the read models from the log (or the past, with --until-seq / --until)."""
    from projections import parse_until
    from services.lockfile import DataDirLock
    from services.log_connection import nats_server

    from .connect import running_nats_url_or_none

    if until_seq is not None and until is not None:
        raise click.UsageError("give --until-seq or --until, not both")
    moment = parse_until(until) if until is not None else None
    settings = state().settings()
    url = running_nats_url_or_none(settings)
    with contextlib.ExitStack() as stack:
        if url is None:
            stack.enter_context(DataDirLock(settings.data_dir))
            url = stack.enter_context(nats_server(settings))
        progress = None if quiet else stack.enter_context(_progress_bar())
        click.echo(asyncio.run(_replay(url, until_seq, moment, progress)))
    return 0


async def _replay(url: str, until_seq: int | None, until: datetime | None,
                  progress: Callable[[int, int], None] | None) -> str:
    from projections import replay
    from services.log_connection import connect_store

    nc, store = await connect_store(url, state().settings(), "runlog-replay")
    try:
        result = await replay(store, db_path=state().settings().duckdb_path,
                              until_seq=until_seq, until=until, progress=progress)
    finally:
        await nc.close()
    return result.describe()


@contextlib.contextmanager
def _progress_bar() -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr, fed ``(position, target)`` after each batch."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TimeRemainingColumn,
    )

    bar = Progress("replay", BarColumn(), TaskProgressColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), console=state().console(stderr=True))
    task = bar.add_task("replay", total=None)

    def advance(position: int, target: int) -> None:
        bar.update(task, completed=position, total=max(target, position))

    with bar:
        yield advance
