"""budget_forecast over a bounded period and live reservations, on rows put in its seams
(``budget_periods``, ``budget_reserved``) directly, so the arithmetic is checked alone."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from projections import build_read_models
from tests.support.service_client import InProcessClient

# A day-long period that began two hours ago, on the shared budget "team".
_DAY_PERIOD = """
CREATE OR REPLACE VIEW budget_periods AS
SELECT 'shared' AS scope, 'team' AS budget_id, 'team' AS name, 'day' AS period,
       'budget:team' AS ledger,
       now() - INTERVAL 2 HOUR AS period_start, now() + INTERVAL 22 HOUR AS period_end,
       CAST(NULL AS BIGINT) AS max_tokens, CAST(1 AS DECIMAL(38, 12)) AS max_cost_usd,
       'active' AS state, CAST(NULL AS TIMESTAMPTZ) AS exhausted_at
"""
_RESERVED = """
CREATE OR REPLACE VIEW budget_reserved AS
SELECT scope, budget_id, period_start, 1000 AS reserved_tokens,
       CAST(0.2 AS DECIMAL(38, 12)) AS reserved_cost_usd
FROM budget_periods
"""


def _forecast(path: Path, *views: str) -> dict[str, Any]:
    with duckdb.connect(str(path)) as con:
        for ddl in views:
            con.execute(ddl)
        result = con.execute("SELECT *, epoch(period_end - forecast_at) / 3600 AS hours_left, "
                             "epoch(projected_exhaustion_at - forecast_at) / 3600 AS runway_h "
                             "FROM budget_forecast WHERE scope = 'shared'")
        names = [d[0] for d in result.description]
        (row,) = result.fetchall()
    return dict(zip(names, row, strict=True))


async def test_a_bounded_period_projects_its_end_and_counts_reservations(
        client: InProcessClient, tmp_path: Path) -> None:
    await client.ok("budget.create", {"budget_id": "team", "name": "team"})
    await client.running_run("r1", budget_id="team")
    for _ in range(3):  # $0.1 a call: 10,000 output tokens of gpt-4o at $10 per million
        await client.ok("usage.record", {"run_id": "r1", "model": "gpt-4o", "tokens_in": 0,
                                         "tokens_out": 10_000})
    path = tmp_path / "read-models.duckdb"
    await build_read_models(client.store, path)

    plain = _forecast(path, _DAY_PERIOD)
    assert (plain["period"], plain["spent_cost_usd"], plain["reserved_cost_usd"]) == (
        "day", Decimal("0.3"), 0)
    assert plain["burn_usd_per_hour_last_hour"] == Decimal("0.3")
    assert plain["burn_usd_per_hour_period"] == Decimal("0.15")  # $0.3 over two hours
    # Spent + $0.3 an hour for the 22 hours left.
    assert plain["projected_period_cost_usd"] == pytest.approx(
        Decimal("0.3") + Decimal("0.3") * Decimal(plain["hours_left"]), abs=Decimal("1e-5"))
    assert plain["runway_h"] == pytest.approx(0.7 / 0.3)  # $0.7 left at $0.3 an hour
    assert (plain["exhausted_by"], plain["exhausts_within_period"]) == ("cost", True)

    held = _forecast(path, _DAY_PERIOD, _RESERVED)
    assert (held["reserved_tokens"], held["reserved_cost_usd"], held["cost_left_usd"]) == (
        1000, Decimal("0.2"), Decimal("0.5"))
    assert held["projected_period_cost_usd"] - plain["projected_period_cost_usd"] == (
        pytest.approx(Decimal("0.2"), abs=Decimal("1e-5")))
    assert held["runway_h"] == pytest.approx(0.5 / 0.3)
