"""Every SQL statement the dashboard and ``/metrics`` run on the read models, in one place.

They go through the read side's SQL path (``runlog.sql.query``), read-only like any
other query. Ids are checked against the id rule before they are written into a
statement, so nothing a URL carries can change what a statement does.
"""

from __future__ import annotations

from events.ids import is_valid_id

__all__ = [
    "BREAKERS",
    "BUDGETS",
    "COST_BY_DAY",
    "COST_BY_MODEL",
    "METRIC_BREAKERS",
    "METRIC_BUDGETS",
    "METRIC_LEASES",
    "METRIC_QUEUE",
    "METRIC_RUNS",
    "METRIC_TASKS",
    "METRIC_USAGE",
    "METRIC_WORKERS",
    "RECENT_TRANSITIONS",
    "RUNS",
    "RUNS_BY_STATE",
    "RUN_BUDGETS",
    "TASKS",
    "TASKS_BY_STATE",
    "WORKERS",
    "WORKERS_BY_STATE",
    "run_queries",
    "tasks_query",
]

_TASK_STATES = frozenset({"queued", "pending", "blocked", "leased", "running", "retry_wait",
                          "succeeded", "failed", "cancelled"})

RUNS_BY_STATE = "SELECT state, count(*) AS runs FROM runs GROUP BY state ORDER BY state"
TASKS_BY_STATE = "SELECT state, count(*) AS tasks FROM tasks GROUP BY state ORDER BY state"
WORKERS_BY_STATE = ("SELECT state, count(*) AS workers FROM workers GROUP BY state "
                    "ORDER BY state")

RUNS = """
SELECT run_id, name, state, tasks_total, task_counts['succeeded'] AS succeeded,
       task_counts['failed'] AS failed, round(cost_usd, 6) AS cost_usd,
       tokens_in + tokens_out AS tokens, over_budget, started_at, ended_at, updated_at
FROM runs ORDER BY updated_at DESC, run_id LIMIT 200
"""

TASKS = """
SELECT task_id, run_id, kind, state, priority, attempts, max_attempts, worker_id,
       error_class, lease_expires_at, updated_at
FROM tasks {where} ORDER BY updated_at DESC, task_id LIMIT 200
"""

WORKERS = """
SELECT worker_id, state, kinds, capacity, active_tasks, active_task_ids, last_heartbeat_at,
       lost_at, updated_at
FROM workers ORDER BY worker_id LIMIT 500
"""

BREAKERS = """
SELECT breaker_id, state, consecutive_failures, failure_threshold, opens, last_error_class,
       opened_at, open_until, closed_at
FROM breakers ORDER BY state <> 'closed' DESC, breaker_id LIMIT 500
"""

BUDGETS = """
SELECT budget_id, name, state, spent_tokens, max_tokens, round(spent_cost_usd, 6) AS spent_cost_usd,
       max_cost_usd,
       round(greatest(spent_tokens / nullif(max_tokens, 0),
                      spent_cost_usd / nullif(max_cost_usd, 0)), 4) AS used,
       charges, exhausted_at
FROM budgets ORDER BY budget_id LIMIT 500
"""

RUN_BUDGETS = """
SELECT run_id, name, state, tokens_in + tokens_out AS tokens, budget_max_tokens,
       round(cost_usd, 6) AS cost_usd, budget_max_cost_usd,
       round(greatest((tokens_in + tokens_out) / nullif(budget_max_tokens, 0),
                      cost_usd / nullif(budget_max_cost_usd, 0)), 4) AS used,
       over_budget
FROM runs WHERE budget_max_tokens IS NOT NULL OR budget_max_cost_usd IS NOT NULL
ORDER BY used DESC NULLS LAST, run_id LIMIT 200
"""

COST_BY_DAY = """
SELECT CAST(day AS VARCHAR) AS day, model, round(sum(cost_usd), 6) AS cost_usd,
       sum(tokens_in + tokens_out) AS tokens, sum(calls) AS calls
FROM usage_daily WHERE day >= current_date - 13
GROUP BY day, model ORDER BY day, model
"""

COST_BY_MODEL = """
SELECT model, provider, count(*) AS calls, sum(tokens_in) AS tokens_in,
       sum(tokens_out) AS tokens_out, round(sum(cost_usd), 6) AS cost_usd,
       count(*) FILTER (WHERE outcome <> 'ok') AS errors
FROM usage GROUP BY model, provider ORDER BY cost_usd DESC, model LIMIT 100
"""

RECENT_TRANSITIONS = """
SELECT seq, occurred_at, aggregate, aggregate_id, event_type, from_state, to_state, trace_id
FROM transitions ORDER BY seq DESC LIMIT 20
"""

METRIC_RUNS = RUNS_BY_STATE
METRIC_TASKS = TASKS_BY_STATE
METRIC_WORKERS = WORKERS_BY_STATE
METRIC_QUEUE = ("SELECT kind, count(*) AS queued FROM tasks WHERE state = 'queued' "
                "GROUP BY kind ORDER BY kind")
METRIC_LEASES = ("SELECT kind, count(*) AS leases FROM tasks WHERE state IN ('leased', 'running') "
                 "GROUP BY kind ORDER BY kind")
METRIC_BREAKERS = "SELECT breaker_id, state FROM breakers ORDER BY breaker_id"
METRIC_BUDGETS = """
SELECT budget_id, spent_tokens, max_tokens, spent_cost_usd, max_cost_usd,
       greatest(spent_tokens / nullif(max_tokens, 0),
                spent_cost_usd / nullif(max_cost_usd, 0)) AS used
FROM budgets WHERE state <> 'closed' ORDER BY budget_id
"""
METRIC_USAGE = """
SELECT model, sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out,
       sum(cost_usd) AS cost_usd, count(*) AS calls
FROM usage GROUP BY model ORDER BY model
"""


def tasks_query(state: str | None) -> str:
    """The tasks page's statement, for one state or all of them."""
    if state is None:
        return TASKS.format(where="")
    if state not in _TASK_STATES:
        raise ValueError(f"unknown task state {state!r}: use one of "
                         f"{', '.join(sorted(_TASK_STATES))}")
    return TASKS.format(where=f"WHERE state = '{state}'")


def run_queries(run_id: str) -> dict[str, str]:
    """The statements of one run's page: the run, its tasks, its timeline and its usage."""
    if not is_valid_id(run_id):
        raise ValueError(f"{run_id!r} is not a valid run id")
    tasks_of_run = f"SELECT task_id FROM tasks WHERE run_id = '{run_id}'"
    return {
        "run": f"SELECT * FROM runs WHERE run_id = '{run_id}'",
        "tasks": TASKS.format(where=f"WHERE run_id = '{run_id}'"),
        "timeline": f"""
            SELECT seq, occurred_at, aggregate, aggregate_id, event_type, from_state, to_state,
                   command_id, trace_id, span_id
            FROM transitions
            WHERE (aggregate = 'run' AND aggregate_id = '{run_id}')
               OR (aggregate = 'task' AND aggregate_id IN ({tasks_of_run}))
            ORDER BY seq LIMIT 1000""",
        "usage": f"""
            SELECT model, count(*) AS calls, sum(tokens_in) AS tokens_in,
                   sum(tokens_out) AS tokens_out, round(sum(cost_usd), 6) AS cost_usd
            FROM usage WHERE run_id = '{run_id}' GROUP BY model ORDER BY cost_usd DESC""",
    }
