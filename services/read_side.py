"""Runs the read side (projectors and the SQL responder) beside the command service."""

from __future__ import annotations

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

    async def stop(self) -> None:
        """Stops serving SQL and projecting, and closes the file."""
        await self.read_side.stop()


async def start_read_side(store: JetStreamEventStore, settings: Settings) -> LiveReadSide:
    """Starts the projectors and the ``runlog.sql.*`` responder (``stop`` ends them)."""
    read_side = ReadSide(store, settings.duckdb_path, limits=sql_limits(settings))
    await read_side.start()
    return LiveReadSide(read_side)
