"""The report's figures come from the read models' real columns: a saving the cache
measured is shown, and one no read model measures is said to be absent."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from projections.database import ReadModelDb
from services.reports.data import gather


async def test_the_result_cache_savings_are_shown_and_routing_savings_said_absent(
        tmp_path: Path) -> None:
    db = ReadModelDb.open_writer(tmp_path / "runlog.duckdb")
    try:
        db.con.execute("INSERT INTO cache_entries (task_id, cache_key, state, hits, "
                       "tokens_saved, cost_saved_usd) VALUES ('t1', 'k1', 'stored', 2, 800, "
                       "0.325), ('t2', 'k2', 'stored', 1, 100, 0.1)")

        async def query(sql: str) -> tuple[list[str], list[list[Any]]]:
            cursor = db.con.cursor()
            try:
                found = cursor.execute(sql)
                columns = [d[0] for d in found.description or []]
                return columns, [list(row) for row in found.fetchall()]
            finally:
                cursor.close()

        report = await gather(query, "daily")
    finally:
        db.close()
    savings = report.section("cache_entries")
    assert dict(zip(savings.columns, savings.rows[0], strict=True)) == {
        "entries": 2, "saved_usd": Decimal("0.425")}
    assert [note for note in report.notes if "cache_entries" in note] == []
    assert [note for note in report.notes if "routing_decisions" in note] == [
        "No savings figure from `routing_decisions`: these read models have no "
        "`routing_decisions` table with a `saved_cost_usd` column yet, so that saving is "
        "not measured here."]
