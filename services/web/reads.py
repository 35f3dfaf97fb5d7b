"""The one way the HTTP side reads the read models: SQL over ``runlog.sql.query``.

Whichever process serves the read models answers (this one today, a child process
or another replica tomorrow); the DuckDB file is never opened here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from nats.aio.client import Client

from projections import query_over_nats

__all__ = ["ReadModels", "Rows"]

Rows = list[dict[str, Any]]


class ReadModels:
    """Runs read-only statements on the read models and returns rows as objects."""

    def __init__(self, nc: Client, timeout_s: float = 5.0) -> None:
        self._nc = nc
        self._timeout_s = timeout_s

    async def rows(self, sql: str, limit: int = 1000) -> Rows:
        """The rows of one statement, each a ``{column: value}`` object."""
        result = await query_over_nats(self._nc, sql, limit=limit, timeout_s=self._timeout_s)
        return [dict(zip(result.columns, row, strict=True)) for row in result.rows]

    async def sections(self, statements: Mapping[str, str]) -> dict[str, Rows]:
        """Runs several statements at once; the rows of each, by name."""
        names = list(statements)
        results = await asyncio.gather(*(self.rows(statements[name]) for name in names))
        return dict(zip(names, results, strict=True))
