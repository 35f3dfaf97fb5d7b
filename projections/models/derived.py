"""Columns derived in SQL from other tables, recomputed for what a batch touched.

A worker's held tasks are its tasks' live leases; a shared budget's spending is its
runs' usage. Both are recomputed from those rows in the batch's own transaction, by
whichever projection touched them, so the result does not depend on batch sizes or on
the order projections run in.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb

__all__ = ["charge_budgets", "recount_budgets", "recount_workers"]

# The live leases first, on their own: with only the state to filter on, the index on
# tasks.state reads just the leased and running tasks. Filtered by worker too, the scan
# read every task (51 ms a batch at 3,000,000 tasks, now 2.9; a worker's own tasks are
# too many for an index on worker_id to be used).
_WORKERS_SQL = """
WITH keys AS MATERIALIZED (SELECT unnest($keys::VARCHAR[]) AS key),
live AS MATERIALIZED (
    SELECT task_id, worker_id FROM tasks WHERE state IN ('leased', 'running'))
UPDATE workers SET active_tasks = h.n, active_task_ids = h.ids,
    state = CASE WHEN workers.state IN ('idle', 'busy')
                 THEN CASE WHEN h.n > 0 THEN 'busy' ELSE 'idle' END
                 ELSE workers.state END
FROM (
    SELECT k.key AS worker_id, coalesce(t.n, 0) AS n, coalesce(t.ids, []::VARCHAR[]) AS ids
    FROM keys AS k LEFT JOIN (
        SELECT worker_id, count(*) AS n, list(task_id ORDER BY task_id) AS ids FROM live
        WHERE worker_id IN (SELECT key FROM keys)
        GROUP BY worker_id) AS t ON t.worker_id = k.key
) AS h
WHERE workers.worker_id = h.worker_id
"""

_BUDGETS_SQL = """
WITH keys AS MATERIALIZED (SELECT unnest($keys::VARCHAR[]) AS key)
UPDATE budgets SET spent_tokens = coalesce(s.tokens, 0), spent_cost_usd = coalesce(s.cost, 0),
    charges = coalesce(s.n, 0), exhausted_at = s.reached_at,
    state = CASE WHEN budgets.state = 'closed' THEN 'closed'
                 WHEN s.reached_at IS NOT NULL THEN 'exhausted' ELSE 'active' END
FROM (
    SELECT k.key AS budget_id, sum(u.tokens) AS tokens, sum(u.cost) AS cost,
           count(u.seq) AS n,
           -- A bound of zero is reached from the start, as the budget aggregate says. A
           -- daily budget's bounds hold for each day, which these all-time sums are not:
           -- budget_ledger has its days.
           coalesce(any_value(b.created_at) FILTER (WHERE b.max_tokens = 0
                                                     OR b.max_cost_usd = 0),
                    min(u.occurred_at) FILTER (WHERE b.period IS NULL AND (
                                                   (b.max_tokens IS NOT NULL
                                                    AND u.running_tokens >= b.max_tokens)
                                                   OR (b.max_cost_usd IS NOT NULL
                                                       AND u.running_cost >= b.max_cost_usd)))
                    ) AS reached_at
    FROM keys AS k
    JOIN budgets AS b ON b.budget_id = k.key
    LEFT JOIN (
        SELECT r.budget_id, x.seq, x.occurred_at, x.tokens_in + x.tokens_out AS tokens,
               x.cost_usd AS cost,
               sum(x.tokens_in + x.tokens_out) OVER w AS running_tokens,
               sum(x.cost_usd) OVER w AS running_cost
        FROM usage AS x JOIN runs AS r ON r.run_id = x.run_id
        WHERE r.budget_id IN (SELECT key FROM keys)
        WINDOW w AS (PARTITION BY r.budget_id ORDER BY x.seq)
    ) AS u ON u.budget_id = k.key
    GROUP BY k.key
) AS s
WHERE budgets.budget_id = s.budget_id
"""


# The same sums as _BUDGETS_SQL, for the usage rows from $first to $last seq only, added
# to what the budget held: a budget's whole usage is read again (recount_budgets) only
# when one of its own events (a raise, a close) may move its bounds. Over the whole
# history, each batch with usage on a shared budget cost 5.1 ms at 60,000 usage rows,
# 20 at 600,000 and 66 at 3,000,000; this costs 5.7-5.9 ms at each of those sizes.
_CHARGES_SQL = """
WITH charged AS (
    SELECT b.budget_id, sum(x.tokens) AS tokens, sum(x.cost) AS cost, count(*) AS n,
           min(x.occurred_at) FILTER (
               WHERE b.period IS NULL AND (
                   (b.max_tokens IS NOT NULL
                    AND b.spent_tokens + x.running_tokens >= b.max_tokens)
                   OR (b.max_cost_usd IS NOT NULL
                       AND b.spent_cost_usd + x.running_cost >= b.max_cost_usd))) AS reached_at
    FROM (
        SELECT budget_id, occurred_at, tokens_in + tokens_out AS tokens, cost_usd AS cost,
               sum(tokens_in + tokens_out) OVER w AS running_tokens,
               sum(cost_usd) OVER w AS running_cost
        FROM usage
        WHERE seq BETWEEN $first AND $last
          AND budget_id IN (SELECT unnest($budgets::VARCHAR[]))
        WINDOW w AS (PARTITION BY budget_id ORDER BY seq)
    ) AS x
    JOIN budgets AS b ON b.budget_id = x.budget_id
    GROUP BY b.budget_id
)
UPDATE budgets SET spent_tokens = budgets.spent_tokens + c.tokens,
    spent_cost_usd = budgets.spent_cost_usd + c.cost, charges = budgets.charges + c.n,
    exhausted_at = coalesce(budgets.exhausted_at, c.reached_at),
    state = CASE WHEN budgets.state = 'closed' THEN 'closed'
                 WHEN coalesce(budgets.exhausted_at, c.reached_at) IS NOT NULL THEN 'exhausted'
                 ELSE 'active' END
FROM charged AS c
WHERE budgets.budget_id = c.budget_id
"""


def _recount(con: duckdb.DuckDBPyConnection, sql: str, keys: Iterable[str | None]) -> None:
    # The keys go in as a list parameter, not a registered Arrow table: the workers'
    # recount of a task batch took 5.0 against 6.3 ms of CPU.
    wanted = sorted({k for k in keys if k})
    if wanted:
        con.execute(sql, {"keys": wanted})


def recount_workers(con: duckdb.DuckDBPyConnection, worker_ids: Iterable[str | None]) -> None:
    """Sets each worker's held tasks (its live leases) and its busy/idle state from them."""
    _recount(con, _WORKERS_SQL, worker_ids)


def recount_budgets(con: duckdb.DuckDBPyConnection, budget_ids: Iterable[str | None]) -> None:
    """Sets each budget's spending (its runs' usage) and whether it is exhausted."""
    _recount(con, _BUDGETS_SQL, budget_ids)


def charge_budgets(con: duckdb.DuckDBPyConnection, budget_ids: Iterable[str], first_seq: int,
                   last_seq: int) -> None:
    """Adds to each budget the usage rows from ``first_seq`` to ``last_seq`` that name it,
    as ``recount_budgets`` would count them (they must be the newest usage of the budget).
    """
    wanted = sorted(set(budget_ids))
    if wanted:
        con.execute(_CHARGES_SQL, {"budgets": wanted, "first": first_seq, "last": last_seq})
