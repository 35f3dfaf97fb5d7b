"""Runs the read side (projectors and the SQL responder) beside the command service."""

from __future__ import annotations

from projections import QueryResult, ReadSide
from services.settings import Settings
from services.store import JetStreamEventStore

__all__ = ["LiveReadSide", "start_read_side"]


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
    read_side = ReadSide(store, settings.duckdb_path)
    await read_side.start()
    return LiveReadSide(read_side)
