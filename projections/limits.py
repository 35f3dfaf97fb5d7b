"""What SQL on the read models may use: time, concurrency, queueing, memory and temp space.

One ``SqlLimits`` is built from the settings at the composition root (``RUNLOG_SQL_*``)
and applies alike to the queries a running service answers and to the read-only opens
of a ``runlog sql`` when no service runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_LIMITS", "SqlLimits"]


@dataclass(frozen=True, kw_only=True)
class SqlLimits:
    """Caps on queries; the defaults suit one service on a small machine."""

    default_timeout_s: float = 10.0
    """A query's time limit when the request names none."""
    max_timeout_s: float = 60.0
    """The longest a query (or a read-your-writes wait) may take, whatever it asks for."""
    workers: int = 4
    """Queries that run at once (threads of the query pool)."""
    per_client: int = 2
    """Queries of one client that run at once; the others wait their turn in the queue."""
    queue: int = 32
    """Queries that may wait for a worker, over all clients; past it a query is refused."""
    memory_limit: str = "1GB"
    """DuckDB's ``memory_limit`` for the read-model database (queries and projector share it)."""
    temp_limit: str = "4GB"
    """DuckDB's ``max_temp_directory_size``: what spilling to ``<file>.tmp`` may use."""
    threads: int = 1
    """DuckDB's worker threads. One: the projector's transactions are small, so a second
    thread has nothing to split. On a loaded 2-core machine the read side's CPU per event
    measured about a quarter higher with two; idle, freshness and CPU came out the same."""

    def timeout(self, asked: float | None) -> float:
        """The time limit a query gets: what it asked for, within (0, ``max_timeout_s``]."""
        if asked is None:
            return min(self.default_timeout_s, self.max_timeout_s)
        return min(max(asked, 0.001), self.max_timeout_s)

    def duckdb_config(self) -> dict[str, Any]:
        """The database settings that enforce the memory and temp-space caps and the threads."""
        return {"memory_limit": self.memory_limit, "max_temp_directory_size": self.temp_limit,
                "threads": self.threads}


DEFAULT_LIMITS = SqlLimits()
