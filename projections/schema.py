"""The read-model schema: the projections' tables, the runtime's tables and the views.

``SCHEMA_VERSION`` goes up whenever a table changes shape; a file built by another
version is rebuilt from the log rather than migrated (the log is the truth).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import duckdb

from .columns import Col, ColType, ddl_columns
from .errors import SchemaMismatch
from .forecasts import DAILY_CALLS, FORECAST_VIEWS
from .liveness import BEAT_INTERVAL_S, LIVENESS_TABLE, STALE_AFTER_BEATS
from .models import Projection, TableDoc
from .models.prices import CACHE_PRICE_COLUMNS

__all__ = [
    "SCHEMA_VERSION",
    "STALE_HEARTBEAT_S",
    "SYSTEM_TABLES",
    "VIEWS",
    "all_tables",
    "ensure_schema",
    "read_info",
    "record_build",
    "write_info",
]

SCHEMA_VERSION = 6
STALE_HEARTBEAT_S = 30
"""A worker that is not offline or lost and has been silent this long shows in ``health``."""

SYSTEM_TABLES = (
    TableDoc("checkpoints", "Where each projection is in the log; updated in the same "
             "transaction as the rows it describes.", (
                 Col("projection", ColType.TEXT, doc="the projection (read model)"),
                 Col("last_seq", ColType.BIGINT, doc="last stream sequence applied"),
                 Col("stream_head", ColType.BIGINT, doc="the stream's last sequence, as seen "
                     "when that batch was applied"),
                 Col("updated_at", ColType.TIME, doc="when that batch was applied"),
             ), ("projection",)),
    TableDoc("projection_errors", "Events a projection could not apply and skipped; the "
             "rest of the log still applies.", (
                 Col("projection", ColType.TEXT, doc="the projection, or 'all' when the "
                     "event could not even be decoded"),
                 Col("seq", ColType.BIGINT, doc="stream sequence of the event"),
                 Col("event_type", ColType.TEXT, doc="its type, when readable"),
                 Col("aggregate", ColType.TEXT, doc="its aggregate type, when readable"),
                 Col("aggregate_id", ColType.TEXT, doc="its aggregate id, when readable"),
                 Col("error", ColType.TEXT, doc="what went wrong, one line"),
                 Col("failed_at", ColType.TIME, doc="when it was skipped"),
             )),
    TableDoc("read_model_info", "What built this file: schema version, and for a "
             "time-travel file the point in the log it stops at.", (
                 Col("key", ColType.TEXT, doc="schema_version, built_by, until_seq, until"),
                 Col("value", ColType.TEXT, doc="its value"),
             ), ("key",)),
    LIVENESS_TABLE,
)

_USAGE_DAILY = """
CREATE OR REPLACE VIEW usage_daily AS
SELECT CAST(occurred_at AT TIME ZONE 'UTC' AS DATE) AS day, model, provider,
       count(*) AS calls, count(*) FILTER (WHERE outcome <> 'ok') AS errors,
       CAST(sum(tokens_in) AS BIGINT) AS tokens_in, CAST(sum(tokens_out) AS BIGINT) AS tokens_out,
       sum(cost_usd) AS cost_usd
FROM usage GROUP BY ALL
"""

_COST_RECONCILIATION = """
CREATE OR REPLACE VIEW cost_reconciliation AS
WITH calls AS (
    SELECT CAST(occurred_at AT TIME ZONE 'UTC' AS DATE) AS day, provider, model, cost_usd,
           provider_cost_usd,
           CASE WHEN provider_cost_usd IS NOT NULL THEN cost_usd END AS computed_reported
    FROM usage)
SELECT day, provider, model, count(*) AS calls, count(provider_cost_usd) AS reported_calls,
       sum(cost_usd) AS cost_usd, sum(computed_reported) AS computed_reported_usd,
       sum(provider_cost_usd) AS provider_cost_usd,
       sum(provider_cost_usd) - sum(computed_reported) AS difference_usd,
       round(100 * (sum(provider_cost_usd) - sum(computed_reported))
             / nullif(sum(computed_reported), 0), 4) AS difference_pct,
       max(abs(provider_cost_usd - cost_usd)) AS max_call_difference_usd
FROM calls GROUP BY ALL
"""

_PRICE_PERIODS = """
CREATE OR REPLACE VIEW model_price_periods AS
SELECT model_id, model, provider, effective_from,
       lead(effective_from) OVER (PARTITION BY model_id ORDER BY effective_from) AS effective_to,
       input_usd_per_mtok, output_usd_per_mtok, cached_input_usd_per_mtok,
       cache_write_usd_per_mtok
FROM model_prices
"""

_LIVE = (f"stopped_at IS NULL AND beat_at >= now() - "
         f"to_seconds({STALE_AFTER_BEATS} * beat_interval_s)")

_HEALTH = f"""
CREATE OR REPLACE VIEW health AS
WITH live AS (SELECT coalesce(bool_or({_LIVE}), false) AS running FROM service_liveness)
SELECT 'service' AS component, 'runlog up' AS name,
       CASE WHEN {_LIVE} THEN 'ok' ELSE 'down' END AS status,
       epoch(now() - beat_at) AS value,
       CASE WHEN stopped_at IS NOT NULL
                 THEN format('down: stopped at {{}} (pid {{}} on {{}})', stopped_at, pid, host)
            WHEN {_LIVE}
                 THEN format('running (pid {{}} on {{}}), last beat {{}} s ago', pid, host,
                             CAST(epoch(now() - beat_at) AS BIGINT))
            ELSE format('down: no beat for {{}} s (pid {{}} on {{}} stopped without a word)',
                        CAST(epoch(now() - beat_at) AS BIGINT), pid, host) END AS detail,
       beat_at AS since
FROM service_liveness
UNION ALL
SELECT 'service', 'runlog up', 'down', NULL, 'down: no runlog up has served this file', NULL
WHERE NOT EXISTS (SELECT 1 FROM service_liveness)
UNION ALL
SELECT 'projection', projection,
       CASE WHEN NOT (SELECT running FROM live) THEN 'stale'
            WHEN stream_head > last_seq THEN 'lagging' ELSE 'ok' END,
       CAST(stream_head - last_seq AS DOUBLE),
       format('at seq {{}} of {{}} ({{}} behind){{}}', last_seq, stream_head,
              stream_head - last_seq,
              CASE WHEN (SELECT running FROM live) THEN ''
                   ELSE format(' as of {{}}; nothing projects now', updated_at) END),
       updated_at
FROM checkpoints
UNION ALL
SELECT 'worker', worker_id, 'stale', epoch(now() - last_heartbeat_at),
       format('{{}} and silent for {{}} s', state,
              CAST(epoch(now() - last_heartbeat_at) AS BIGINT)), last_heartbeat_at
FROM workers
WHERE state NOT IN ('offline', 'lost')
  AND last_heartbeat_at < now() - INTERVAL {STALE_HEARTBEAT_S} SECOND
UNION ALL
SELECT 'worker', worker_id, 'lost', NULL, 'declared lost', lost_at
FROM workers WHERE state = 'lost'
UNION ALL
SELECT 'breaker', breaker_id, state, CAST(consecutive_failures AS DOUBLE),
       CASE WHEN state = 'open' THEN format('open until {{}}', open_until)
            ELSE format('probe until {{}}', probe_deadline) END, opened_at
FROM breakers WHERE state IN ('open', 'half_open')
UNION ALL
SELECT 'projection_errors', projection, 'errors', CAST(count(*) AS DOUBLE),
       format('{{}} skipped event(s), latest at seq {{}}', count(*), max(seq)), max(failed_at)
FROM projection_errors GROUP BY projection
"""

_RESOURCES = """
CREATE OR REPLACE VIEW resources AS
SELECT resource,
       any_value(task_id) FILTER (WHERE state IN ('leased', 'running')) AS held_by_task,
       any_value(worker_id) FILTER (WHERE state IN ('leased', 'running')) AS held_by_worker,
       count(*) FILTER (WHERE state IN ('queued', 'retry_wait')) AS waiting,
       list(task_id ORDER BY priority DESC, last_seq)
           FILTER (WHERE state IN ('queued', 'retry_wait')) AS waiting_task_ids
FROM tasks
WHERE resource IS NOT NULL AND state NOT IN ('succeeded', 'failed', 'cancelled')
GROUP BY resource
"""

_DEAD_LETTERS = """
CREATE OR REPLACE VIEW dead_letters AS
SELECT task_id, run_id, kind, attempts, max_attempts, error_class, error_message,
       ended_at AS failed_at, worker_id
FROM tasks WHERE state = 'failed'
"""

_BUDGET_LEDGER = """
CREATE OR REPLACE VIEW budget_ledger AS
WITH spent AS (
    SELECT scope, sum(tokens) AS tokens, sum(cost) AS cost, count(*) AS calls
    FROM (SELECT unnest(scopes) AS scope, tokens_in + tokens_out AS tokens, cost_usd AS cost
          FROM usage
          UNION ALL  -- older usage named no scopes: it counts on the budget it names
          SELECT 'budget:' || budget_id, tokens_in + tokens_out, cost_usd FROM usage
          WHERE (scopes IS NULL OR len(scopes) = 0) AND budget_id IS NOT NULL)
    GROUP BY scope),
held AS (
    SELECT scope, sum(tokens) AS tokens, sum(cost) AS cost, count(*) AS live
    FROM (SELECT unnest(scopes) AS scope, estimate_tokens AS tokens,
                 estimate_cost_usd AS cost
          FROM reservations WHERE state = 'reserved') GROUP BY scope),
keys AS (
    SELECT scope,
           CASE WHEN scope LIKE 'day@%' THEN 'day' ELSE split_part(scope, ':', 1) END AS kind,
           CASE WHEN scope LIKE 'day@%' THEN NULL
                ELSE split_part(split_part(scope, ':', 2), '@', 1) END AS target,
           CASE WHEN contains(scope, '@') THEN split_part(scope, '@', 2) ELSE '' END AS period
    FROM (SELECT scope FROM spent UNION SELECT scope FROM held))
SELECT k.scope, k.kind, k.target, k.period,
       coalesce(s.tokens, 0) AS settled_tokens, coalesce(s.cost, 0) AS settled_cost_usd,
       coalesce(h.tokens, 0) AS reserved_tokens, coalesce(h.cost, 0) AS reserved_cost_usd,
       coalesce(h.live, 0) AS live_reservations, coalesce(s.calls, 0) AS calls,
       b.max_tokens, b.max_cost_usd
FROM keys AS k
LEFT JOIN spent AS s ON s.scope = k.scope
LEFT JOIN held AS h ON h.scope = k.scope
LEFT JOIN budgets AS b ON k.kind = 'budget' AND b.budget_id = k.target
"""

VIEWS = (
    (TableDoc("usage_daily", "Usage by UTC day, model and provider.", (
        Col("day", ColType.DATE, doc="the UTC day"),
        Col("model", ColType.TEXT, doc="the model called"),
        Col("provider", ColType.TEXT, doc="who served it"),
        Col("calls", ColType.BIGINT, doc="UsageRecorded events"),
        Col("errors", ColType.BIGINT, doc="calls whose outcome is not ok"),
        Col("tokens_in", ColType.BIGINT, doc="input tokens"),
        Col("tokens_out", ColType.BIGINT, doc="output tokens"),
        Col("cost_usd", ColType.MONEY, doc="cost, at the prices frozen on each event")),
        kind="view"), _USAGE_DAILY),
    (TableDoc("cost_reconciliation", "What runlog computed against what providers billed, by "
              "UTC day, provider and model (calls whose usage.record carried "
              "provider_cost_usd).", (
                  *DAILY_CALLS,
                  Col("reported_calls", ColType.BIGINT, doc="of them, with a provider cost"),
                  Col("cost_usd", ColType.MONEY, doc="computed cost of all the calls"),
                  Col("computed_reported_usd", ColType.MONEY,
                      doc="computed cost of the calls with a provider cost"),
                  Col("provider_cost_usd", ColType.MONEY, doc="what the provider billed for them"),
                  Col("difference_usd", ColType.MONEY,
                      doc="provider minus computed, over the reported calls"),
                  Col("difference_pct", ColType.DOUBLE,
                      doc="that difference as a percentage of the computed cost"),
                  Col("max_call_difference_usd", ColType.MONEY,
                      doc="the largest difference on one call")), kind="view"),
     _COST_RECONCILIATION),
    (TableDoc("model_price_periods", "Each price entry with the instant the next one "
              "replaced it (null: still in effect).", (
                  Col("model_id", ColType.TEXT, doc="the model aggregate's id"),
                  Col("model", ColType.TEXT, doc="the model's name"),
                  Col("provider", ColType.TEXT, doc="who serves it"),
                  Col("effective_from", ColType.TIME, doc="the price applies from here"),
                  Col("effective_to", ColType.TIME, doc="until the next entry's effective_from"),
                  Col("input_usd_per_mtok", ColType.MONEY, doc="USD per million input tokens"),
                  Col("output_usd_per_mtok", ColType.MONEY,
                      doc="USD per million output tokens"),
                  *CACHE_PRICE_COLUMNS), kind="view"), _PRICE_PERIODS),
    (TableDoc("health", "What needs attention: whether a `runlog up` is projecting into "
              f"this file (down after {STALE_AFTER_BEATS} missed beats of "
              f"{BEAT_INTERVAL_S:g} s, or at once after a clean stop), lag per projection "
              "(against the stream head seen at its last batch; stale while nothing "
              f"projects), workers silent for {STALE_HEARTBEAT_S} s or lost, open or "
              "half-open breakers, skipped events.", (
                  Col("component", ColType.TEXT, doc="service, projection, worker, breaker or "
                      "projection_errors"),
                  Col("name", ColType.TEXT, doc="which one"),
                  Col("status", ColType.TEXT, doc="ok, down, lagging, stale, lost, open, "
                      "half_open, errors"),
                  Col("value", ColType.DOUBLE, doc="seconds since the last beat, events "
                      "behind, seconds silent, failures or errors"),
                  Col("detail", ColType.TEXT, doc="one line for people"),
                  Col("since", ColType.TIME, doc="when it was last seen or happened")),
              kind="view"), _HEALTH),
    (TableDoc("resources", "Every resource an open task names: who holds it (one lease at "
              "a time) and who waits for it, in the order they will get it.", (
                  Col("resource", ColType.TEXT, doc="the resource (task.submit resource)"),
                  Col("held_by_task", ColType.TEXT, doc="the task holding it, if any"),
                  Col("held_by_worker", ColType.TEXT, doc="that task's worker"),
                  Col("waiting", ColType.BIGINT, doc="claimable tasks waiting for it"),
                  Col("waiting_task_ids", ColType.TEXT_LIST, doc="them, first in line first")),
              kind="view"), _RESOURCES),
    (TableDoc("dead_letters", "Tasks that failed for good (a permanent error class, or their "
              "last attempt); task.requeue sends one back with fresh attempts.", (
                  Col("task_id", ColType.TEXT, doc="the task"),
                  Col("run_id", ColType.TEXT, doc="its run"),
                  Col("kind", ColType.TEXT, doc="its kind"),
                  Col("attempts", ColType.INT, doc="attempts made"),
                  Col("max_attempts", ColType.INT, doc="attempts it had"),
                  Col("error_class", ColType.TEXT, doc="class of its last failure"),
                  Col("error_message", ColType.TEXT, doc="message of its last failure"),
                  Col("failed_at", ColType.TIME, doc="when it failed"),
                  Col("worker_id", ColType.TEXT, doc="the worker of its last attempt")),
              kind="view"), _DEAD_LETTERS),
    (TableDoc("budget_ledger", "Every budget ledger (scope and period): what usage settled on "
              "it and what live reservations hold, beside the bounds of an explicit budget. "
              "Admission refuses a reservation when settled + reserved + its estimate would "
              "pass a bound.", (
                  Col("scope", ColType.TEXT, doc="run:<id>, session:<id>, day@<date>, "
                      "budget:<id> or budget:<id>@<date> (a daily budget's day)"),
                  Col("kind", ColType.TEXT, doc="run, session, day or budget"),
                  Col("target", ColType.TEXT, doc="the run, session or budget id"),
                  Col("period", ColType.TEXT, doc="the day (in the budget's time zone), or empty"),
                  Col("settled_tokens", ColType.BIGINT, doc="tokens of the usage counted here"),
                  Col("settled_cost_usd", ColType.MONEY, doc="its cost"),
                  Col("reserved_tokens", ColType.BIGINT, doc="tokens live reservations hold"),
                  Col("reserved_cost_usd", ColType.MONEY, doc="USD live reservations hold"),
                  Col("live_reservations", ColType.BIGINT, doc="live reservations counted here"),
                  Col("calls", ColType.BIGINT, doc="usage records counted here"),
                  Col("max_tokens", ColType.BIGINT, doc="an explicit budget's token bound"),
                  Col("max_cost_usd", ColType.MONEY, doc="an explicit budget's USD bound")),
              kind="view"), _BUDGET_LEDGER),
    *FORECAST_VIEWS,
)


def all_tables(projections: Sequence[Projection]) -> tuple[TableDoc, ...]:
    """Returns every table and view of the schema, projections' first."""
    owned = tuple(t for p in projections for t in p.tables())
    return owned + SYSTEM_TABLES + tuple(doc for doc, _ in VIEWS)


def ensure_schema(con: duckdb.DuckDBPyConnection, projections: Sequence[Projection]) -> None:
    """Creates whatever is missing, or raises ``SchemaMismatch`` for a file of another version."""
    found = _stored_version(con)
    if found is not None and found != SCHEMA_VERSION:
        raise SchemaMismatch(
            f"read models are schema v{found}, this runlog needs v{SCHEMA_VERSION}: "
            "run `runlog replay` to rebuild them from the log"
        )
    con.execute("BEGIN")
    try:
        for table in (*(t for p in projections for t in p.tables()), *SYSTEM_TABLES):
            con.execute(f"CREATE TABLE IF NOT EXISTS {table.name} "
                        f"(\n    {ddl_columns(table.columns, table.key)}\n)")
            for column in table.indexes:
                # Added to a file built before the index, too: the shape is the same.
                con.execute(f"CREATE INDEX IF NOT EXISTS {table.name}_{column} "
                            f"ON {table.name} ({column})")
        for _, ddl in VIEWS:
            con.execute(ddl)
        write_info(con, {"schema_version": str(SCHEMA_VERSION)})
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _stored_version(con: duckdb.DuckDBPyConnection) -> int | None:
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'read_model_info'"
    ).fetchone()
    if not exists or not exists[0]:
        return None
    value = read_info(con).get("schema_version")
    return int(value) if value is not None else None


def read_info(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Returns the ``read_model_info`` entries."""
    rows = con.execute("SELECT key, value FROM read_model_info").fetchall()
    return {str(k): str(v) for k, v in rows}


def write_info(con: duckdb.DuckDBPyConnection, entries: dict[str, str]) -> None:
    """Sets ``read_model_info`` entries (a handful of rows, in one statement)."""
    if entries:
        values = ", ".join("(?, ?)" for _ in entries)
        params = [item for pair in entries.items() for item in pair]
        con.execute(f"INSERT OR REPLACE INTO read_model_info VALUES {values}", params)


def record_build(con: duckdb.DuckDBPyConnection, position: int, until_seq: int | None = None,
                 until: datetime | None = None) -> None:
    """Notes in ``read_model_info`` that a replay built the file, how far and to which
    bound, then checkpoints it (the file is moved into place next)."""
    info = {"built_by": "replay", "built_at": datetime.now(UTC).isoformat(),
            "position": str(position)}
    if until_seq is not None:
        info["until_seq"] = str(until_seq)
    if until is not None:
        info["until"] = until.isoformat()
    write_info(con, info)
    con.execute("CHECKPOINT")
