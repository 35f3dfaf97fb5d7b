"""``runlog run|task|worker|breaker|budget list|show``: the read models, one noun at a time.

Each noun is data (its table, columns, filters and what ``show`` adds); the commands
are built from it, so every noun lists, filters and shows the same way. ``show``
always ends with the aggregate's transitions: its timeline, with trace ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click

from services.errors import RunlogError

from .context import RunlogCommand, RunlogGroup
from .output import Section, emit_record, emit_rows, emit_sections, output_option, say
from .reads import literal, query

__all__ = ["NOUNS", "Noun", "groups"]

_TIMELINE = ("SELECT seq, occurred_at, aggregate, aggregate_id, event_type, from_state, "
             "to_state, trace_id FROM transitions WHERE {where} ORDER BY seq")


@dataclass(frozen=True, slots=True)
class Noun:
    """One read model as a noun of the command line."""

    name: str
    table: str
    key: str
    columns: str
    """The SELECT list of ``list``."""
    order: str
    filters: tuple[str, ...] = ("state",)
    """Columns ``list`` filters on with ``--<column> VALUE``."""
    related: tuple[tuple[str, str], ...] = ()
    """Sections ``show`` adds: a title and a query with ``{id}`` for the quoted id."""
    timeline: str = "aggregate = '{aggregate}' AND aggregate_id = {id}"

    def list_sql(self, filters: dict[str, str], limit: int) -> str:
        """The ``list`` query."""
        where = " AND ".join(f"{column} = {literal(value)}" for column, value in filters.items())
        return (f"SELECT {self.columns} FROM {self.table}{' WHERE ' + where if where else ''} "
                f"ORDER BY {self.order} LIMIT {limit}")

    def sections(self, quoted_id: str) -> list[tuple[str, str]]:
        """The queries of ``show`` after the row itself."""
        timeline = self.timeline.format(aggregate=self.name, id=quoted_id)
        return [*((title, sql.format(id=quoted_id)) for title, sql in self.related),
                ("transitions", _TIMELINE.format(where=timeline))]


NOUNS = (
    Noun("run", "runs", "run_id",
         "run_id, name, state, tasks_total, tokens_in + tokens_out AS tokens, "
         "round(cost_usd, 6) AS cost_usd, created_at, ended_at", "created_at DESC",
         related=(("tasks", "SELECT task_id, kind, state, priority, attempts, worker_id, "
                   "error_class, updated_at FROM tasks WHERE run_id = {id} ORDER BY created_at"),),
         timeline="(aggregate = 'run' AND aggregate_id = {id}) OR (aggregate = 'task' AND "
                  "aggregate_id IN (SELECT task_id FROM tasks WHERE run_id = {id}))"),
    Noun("task", "tasks", "task_id",
         "task_id, run_id, kind, state, priority, attempts, worker_id, updated_at",
         "updated_at DESC", filters=("state", "run_id", "kind", "worker_id")),
    Noun("worker", "workers", "worker_id",
         "worker_id, state, kinds, active_tasks, capacity, last_heartbeat_at", "worker_id",
         related=(("tasks held", "SELECT task_id, run_id, kind, state, lease_expires_at FROM "
                   "tasks WHERE worker_id = {id} AND state IN ('leased', 'running')"),)),
    Noun("breaker", "breakers", "breaker_id",
         "breaker_id, state, consecutive_failures, failure_threshold, opens, open_until, "
         "last_error_class, is_forced", "breaker_id"),
    Noun("budget", "budgets", "budget_id",
         "budget_id, name, state, spent_tokens, max_tokens, round(spent_cost_usd, 6) AS "
         "spent_cost_usd, max_cost_usd, round(100 * greatest(spent_tokens / nullif(max_tokens, 0),"
         " spent_cost_usd / nullif(max_cost_usd, 0)), 1) AS used_pct", "budget_id",
         related=(("forecast", "SELECT period, period_start, reserved_tokens, reserved_cost_usd, "
                   "burn_tokens_per_hour_last_hour, burn_usd_per_hour_last_hour, "
                   "projected_exhaustion_at, exhausted_by FROM budget_forecast "
                   "WHERE ledger LIKE 'budget:%' AND budget_id = {id} ORDER BY period_start"),)),
)


def groups() -> list[click.Group]:
    """One command group per noun."""
    return [_group(noun) for noun in NOUNS]


def _group(noun: Noun) -> click.Group:
    group = RunlogGroup(noun.name, help=f"The {noun.table} read model: list or show {noun.name}s.")
    group.add_command(_list_command(noun))
    group.add_command(_show_command(noun))
    return group


def _list_command(noun: Noun) -> click.Command:
    def run(limit: int, output: str, **filters: str | None) -> int:
        given = {k: v for k, v in filters.items() if v is not None}
        result = asyncio.run(query(noun.list_sql(given, limit), limit=limit, whole=False))
        count = len(result.rows)
        cut = result.truncated and count < limit  # by the size of one reply, not the limit
        more = "; --limit reached" if count == limit else "; more did not fit" if cut else ""
        emit_rows(result.columns, result.rows, output, note=f"({count} {noun.table}{more})")
        if cut:
            say(f"only {count} {noun.table} fit in one reply: lower --limit, or "
                f"`runlog sql -o jsonl` streams every row", style="yellow")
            return 1
        return 0

    for column in reversed(noun.filters):
        run = click.option(f"--{column.replace('_', '-')}", column, default=None,
                           metavar="VALUE", help=f"only {noun.table} whose {column} is VALUE")(run)
    run = click.option("--limit", type=click.IntRange(min=1, max=100_000), default=50,
                       help="at most this many rows")(run)
    run = output_option()(run)
    newest = " (newest first)" if noun.order.endswith("DESC") else ""
    return click.command("list", cls=RunlogCommand, help=f"List {noun.table}{newest}.")(run)


def _show_command(noun: Noun) -> click.Command:
    def run(ident: str, output: str) -> int:
        row, sections = asyncio.run(_show(noun, ident))
        if output == "json":
            emit_record({noun.name: row, **{title: _objects(columns, rows)
                                            for title, columns, rows in sections}}, "json")
        elif output == "table":
            emit_record(row, "table", title=f"{noun.name} {ident}")
            emit_sections(sections, "table")
        else:
            emit_sections([(noun.name, list(row), [list(row.values())]), *sections], output)
        return 0

    run = output_option()(run)
    run = click.argument("ident", metavar="ID")(run)
    return click.command("show", cls=RunlogCommand,
                         help=f"Show one {noun.name}, its related rows and its transitions.")(run)


async def _show(noun: Noun, ident: str) -> tuple[dict[str, Any], list[Section]]:
    quoted = literal(ident)
    found = await query(f"SELECT * FROM {noun.table} WHERE {noun.key} = {quoted}", limit=1)
    if not found.rows:
        raise RunlogError(f"{noun.name} {ident} not found in the read models")
    row = dict(zip(found.columns, found.rows[0], strict=True))
    results = await asyncio.gather(*(query(sql) for _, sql in noun.sections(quoted)))
    return row, [(title, r.columns, r.rows)
                 for (title, _), r in zip(noun.sections(quoted), results, strict=True)]


def _objects(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(columns, row, strict=True)) for row in rows]
