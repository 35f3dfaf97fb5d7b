"""The report's figures: SQL on the read models, by day or by ISO week.

Optional read models (the result cache, routing decisions, cached-token columns) are
read only when the file has them; otherwise the report says they are absent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PERIODS", "Query", "Report", "Section", "gather"]

Query = Callable[[str], Awaitable[tuple[list[str], list[list[Any]]]]]
"""Runs one read-only statement and returns its columns and rows."""

PERIODS = {"daily": ("day", 14), "weekly": ("week", 8)}
"""Report name -> (the period it buckets by, how many periods it covers by default)."""


@dataclass(frozen=True, slots=True)
class Section:
    """One table of the report."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""


@dataclass(frozen=True, slots=True)
class Report:
    """Everything a report shows."""

    name: str
    unit: str
    periods: int
    since: str
    sections: dict[str, Section]
    notes: list[str] = field(default_factory=list)

    def section(self, key: str) -> Section:
        """One section by key."""
        return self.sections[key]


def _queries(unit: str, since: str) -> dict[str, tuple[str, str]]:
    period = f"CAST(date_trunc('{unit}', occurred_at AT TIME ZONE 'UTC') AS DATE)"
    window = f"occurred_at >= TIMESTAMPTZ '{since}'"
    ended = f"CAST(date_trunc('{unit}', ended_at AT TIME ZONE 'UTC') AS DATE)"
    return {
        "totals": ("Totals", f"""
            SELECT count(*) AS calls, coalesce(sum(tokens_in), 0) AS tokens_in,
                   coalesce(sum(tokens_out), 0) AS tokens_out,
                   round(coalesce(sum(cost_usd), 0), 6) AS cost_usd,
                   count(*) FILTER (WHERE outcome <> 'ok') AS failed_calls
            FROM usage WHERE {window}"""),
        "cost_by_model": ("Cost by model and period", f"""
            SELECT {period} AS period, model, provider, count(*) AS calls,
                   sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out,
                   round(sum(cost_usd), 6) AS cost_usd
            FROM usage WHERE {window} GROUP BY ALL ORDER BY period, cost_usd DESC"""),
        "tokens": ("Tokens by period", f"""
            SELECT {period} AS period, sum(tokens_in) AS tokens_in,
                   sum(tokens_out) AS tokens_out, round(sum(cost_usd), 6) AS cost_usd
            FROM usage WHERE {window} GROUP BY ALL ORDER BY period"""),
        "tasks": ("Task outcomes, success and retry rates", f"""
            WITH ended AS (
                SELECT {ended} AS period, state, attempts FROM tasks
                WHERE ended_at >= TIMESTAMPTZ '{since}'
                  AND state IN ('succeeded', 'failed', 'cancelled')),
            spent AS (
                SELECT {period} AS period, sum(cost_usd) AS cost_usd FROM usage
                WHERE {window} GROUP BY ALL)
            SELECT e.period, count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
                   count(*) FILTER (WHERE state = 'failed') AS failed,
                   count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
                   round(100.0 * count(*) FILTER (WHERE state = 'succeeded')
                         / nullif(count(*) FILTER (WHERE state <> 'cancelled'), 0), 1)
                       AS success_pct,
                   round(100.0 * count(*) FILTER (WHERE attempts > 1) / count(*), 1)
                       AS retried_pct,
                   round(any_value(s.cost_usd)
                         / nullif(count(*) FILTER (WHERE state = 'succeeded'), 0), 6)
                       AS cost_per_succeeded_usd
            FROM ended AS e LEFT JOIN spent AS s USING (period)
            GROUP BY e.period ORDER BY e.period"""),
        "budgets": ("Budget use", """
            SELECT budget_id, name, state, spent_tokens, max_tokens,
                   round(spent_cost_usd, 6) AS spent_cost_usd, max_cost_usd,
                   round(100 * greatest(spent_tokens / nullif(max_tokens, 0),
                                        spent_cost_usd / nullif(max_cost_usd, 0)), 1) AS used_pct
            FROM budgets ORDER BY used_pct DESC NULLS LAST, budget_id"""),
        "run_budgets": ("Runs over their own budget", f"""
            SELECT count(*) FILTER (WHERE over_budget) AS runs_over_budget,
                   count(*) FILTER (WHERE budget_max_tokens IS NOT NULL
                                    OR budget_max_cost_usd IS NOT NULL) AS runs_with_budget,
                   count(*) AS runs
            FROM runs WHERE created_at >= TIMESTAMPTZ '{since}'"""),
    }


_SAVINGS = (
    ("cache_entries", "cost_saved_usd", "Savings from the result cache"),
    ("routing_decisions", "saved_cost_usd", "Savings from fallbacks and routing"),
)
"""Each read model that may say what it saved, and the column that would (routing
decisions hold none yet: the report says so rather than show a zero)."""


async def gather(query: Query, name: str, periods: int | None = None) -> Report:
    """Runs every query of the ``daily`` or ``weekly`` report."""
    unit, default = PERIODS[name]
    count = periods or default
    _, rows = await query(
        f"SELECT CAST(date_trunc('{unit}', now() AT TIME ZONE 'UTC') - INTERVAL "
        f"{count - 1} {unit.upper()} AS DATE) AS since")
    since = str(rows[0][0])
    named = _queries(unit, since)
    results = await asyncio.gather(*(query(sql) for _, sql in named.values()))
    sections = {key: Section(key, title, cols, data) for (key, (title, _)), (cols, data)
                in zip(named.items(), results, strict=True)}
    notes: list[str] = []
    for key, section in (await _savings(query, since)).items():
        if section is None:
            notes.append(_absent_note(key))
        else:
            sections[key] = section
    return Report(name, unit, count, since, sections, notes)


async def _savings(query: Query, since: str) -> dict[str, Section | None]:
    _, present = await query("SELECT table_name, column_name FROM duckdb_columns() "
                             "WHERE table_name IN ('cache_entries', 'routing_decisions')")
    have = {(str(t), str(c)) for t, c in present}
    found: dict[str, Section | None] = {}
    for table, column, title in _SAVINGS:
        if (table, column) not in have:
            found[f"{table}.{column}"] = None
            continue
        cols, rows = await query(f"SELECT count(*) AS entries, coalesce(round(sum({column}), "
                                 f"6), 0) AS saved_usd FROM {table}")
        found[table] = Section(table, title, cols, rows)
    return found


def _absent_note(where: str) -> str:
    table, _, column = where.partition(".")
    return (f"No savings figure from `{table}`: these read models have no `{table}` table with "
            f"a `{column}` column yet, so that saving is not measured here.")


def columns_of(section: Section, *names: str) -> list[Sequence[Any]]:
    """The named columns of a section, as columns (lists of values)."""
    index = [section.columns.index(n) for n in names]
    return [[row[i] for row in section.rows] for i in index]
