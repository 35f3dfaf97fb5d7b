"""Runs the read side (projectors and the SQL responder) beside the command service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from projections import QueryResult, ReadSide, SqlLimits
from services.settings import Settings
from services.store import JetStreamEventStore

__all__ = ["LiveReadSide", "sql_limits", "start_read_side"]


def sql_limits(settings: Settings) -> SqlLimits:
    """The ``RUNLOG_SQL_*`` caps, for the service's queries and for local read-only opens."""
    return SqlLimits(max_timeout_s=settings.sql_max_timeout_s, workers=settings.sql_workers,
                     per_client=settings.sql_per_client, queue=settings.sql_queue,
                     memory_limit=settings.sql_memory_limit.strip(),
                     temp_limit=settings.sql_temp_limit.strip())


class LiveReadSide:
    """The read side of this process: read-your-writes waits and queries on its own file."""

    def __init__(self, read_side: ReadSide) -> None:
        self.read_side = read_side

    async def wait_for_seq(self, seq: int, timeout_s: float = 10.0) -> int:
        """Waits until every projection has applied stream sequence ``seq``."""
        return await self.read_side.wait_for_seq(seq, timeout_s)

    async def query(self, sql: str) -> QueryResult:
        """Runs a read-only query on the live read models."""
        return await self.read_side.query(sql)


@contextlib.asynccontextmanager
async def start_read_side(store: JetStreamEventStore, settings: Settings
                          ) -> AsyncIterator[LiveReadSide]:
    """Starts the projectors and the ``runlog.sql.*`` responder; stops them on exit."""
    async with ReadSide(store, settings.duckdb_path, limits=sql_limits(settings)) as read_side:
        yield LiveReadSide(read_side)
