"""Forecast views: where each budget and each model's daily usage is heading, in SQL alone.

Every figure is derived from the ``usage``, ``budgets`` and ``runs`` rows at query time
(``now()``), so a forecast is never stale and replay needs nothing extra. The views are
layered so a new kind of budget period adds rows to ``budget_periods`` and
``budget_period_usage`` (and live reservations to ``budget_reserved``), and
``budget_forecast`` forecasts it with no change of its own.

A burn rate is spending per hour: over the last hour before the period's clock (now, or
the period's end once it is over), and over the period so far. Projections extrapolate
the last hour's rate: it follows a change of pace at once, where the period's average
would lag behind it for hours.
"""

from __future__ import annotations

from .columns import Col, ColType
from .models import TableDoc

__all__ = ["DAILY_CALLS", "FORECAST_VIEWS"]

_BUDGET_PERIODS = """
CREATE OR REPLACE VIEW budget_periods AS
WITH daily AS (
    SELECT budget_id, scope, name, time_zone, max_tokens, max_cost_usd, state
    FROM budgets WHERE period = 'day'),
days AS (
    -- Each day a daily budget counted something on, and its today.
    SELECT d.budget_id, CAST(l.period AS DATE) AS day
    FROM daily AS d JOIN budget_ledger AS l
      ON l.kind = 'budget' AND l.target = d.budget_id AND l.period <> ''
    UNION
    SELECT budget_id, CAST(timezone(time_zone, now()) AS DATE) FROM daily
    WHERE state <> 'closed'),
utc_days AS (
    SELECT DISTINCT CAST(occurred_at AT TIME ZONE 'UTC' AS DATE) AS day FROM usage
    UNION
    SELECT CAST(now() AT TIME ZONE 'UTC' AS DATE))
SELECT scope, budget_id, name, 'total' AS period, 'budget:' || budget_id AS ledger,
       created_at AS period_start, closed_at AS period_end, max_tokens, max_cost_usd, state,
       exhausted_at
FROM budgets WHERE period IS DISTINCT FROM 'day'
UNION ALL
SELECT d.scope, d.budget_id, d.name, 'day',
       'budget:' || d.budget_id || '@' || CAST(x.day AS VARCHAR),
       timezone(d.time_zone, CAST(x.day AS TIMESTAMP)),
       timezone(d.time_zone, CAST(x.day AS TIMESTAMP) + INTERVAL 1 DAY),
       d.max_tokens, d.max_cost_usd, d.state, CAST(NULL AS TIMESTAMPTZ)
FROM daily AS d JOIN days AS x USING (budget_id)
UNION ALL
SELECT 'run', run_id, name, 'total', 'run:' || run_id, coalesce(started_at, created_at),
       ended_at, budget_max_tokens, budget_max_cost_usd, state, over_budget_at
FROM runs WHERE budget_max_tokens IS NOT NULL OR budget_max_cost_usd IS NOT NULL
UNION ALL
-- The whole day's spending (UTC), which RUNLOG_BUDGET_DAY_TOKENS bounds: no bound here.
SELECT 'day', 'day', 'UTC day', 'day', 'day@' || CAST(day AS VARCHAR),
       timezone('UTC', CAST(day AS TIMESTAMP)),
       timezone('UTC', CAST(day AS TIMESTAMP) + INTERVAL 1 DAY), NULL, NULL, 'active', NULL
FROM utc_days
"""

# A usage counts on the ledgers it names (usage.scopes); one recorded before usage named
# them counts on the shared budget it names alone, as the write side's ledgers count it
# (services/command_service/aggregates.py): on its run's and the day's too, these figures
# said a run had spent what its own budget's admission never counted.
_BUDGET_PERIOD_USAGE = """
CREATE OR REPLACE VIEW budget_period_usage AS
WITH charged AS (
    SELECT seq, occurred_at, unnest(scopes) AS ledger, tokens_in + tokens_out AS tokens,
           cost_usd
    FROM usage WHERE len(scopes) > 0
    UNION ALL
    SELECT seq, occurred_at, 'budget:' || budget_id, tokens_in + tokens_out, cost_usd
    FROM usage WHERE (scopes IS NULL OR len(scopes) = 0) AND budget_id IS NOT NULL)
SELECT p.scope, p.budget_id, p.period_start, c.seq, c.occurred_at, c.tokens, c.cost_usd
FROM budget_periods AS p JOIN charged AS c ON c.ledger = p.ledger
"""

# Live reservations per budget period, on the same ledgers.
_BUDGET_RESERVED = """
CREATE OR REPLACE VIEW budget_reserved AS
SELECT p.scope, p.budget_id, p.period_start,
       CAST(sum(r.estimate_tokens) AS BIGINT) AS reserved_tokens,
       CAST(sum(r.estimate_cost_usd) AS DECIMAL(38, 12)) AS reserved_cost_usd
FROM budget_periods AS p
JOIN (SELECT unnest(scopes) AS ledger, estimate_tokens, estimate_cost_usd
      FROM reservations WHERE state = 'reserved') AS r ON r.ledger = p.ledger
GROUP BY p.scope, p.budget_id, p.period_start
"""

_BUDGET_FORECAST = """
CREATE OR REPLACE VIEW budget_forecast AS
WITH clocked AS (
    SELECT p.*, CASE WHEN p.period_end IS NOT NULL AND p.period_end < now() THEN p.period_end
                     ELSE now() END AS clock
    FROM budget_periods AS p),
spent AS (
    SELECT k.scope, k.budget_id, k.period_start,
           coalesce(sum(u.tokens), 0) AS spent_tokens,
           coalesce(sum(u.cost_usd), 0) AS spent_cost_usd,
           coalesce(sum(u.tokens) FILTER (WHERE u.occurred_at > k.clock - INTERVAL 1 HOUR), 0)
               AS hour_tokens,
           coalesce(sum(u.cost_usd) FILTER (WHERE u.occurred_at > k.clock - INTERVAL 1 HOUR), 0)
               AS hour_cost_usd
    FROM clocked AS k
    LEFT JOIN budget_period_usage AS u
      ON u.scope = k.scope AND u.budget_id = k.budget_id AND u.period_start = k.period_start
    GROUP BY k.scope, k.budget_id, k.period_start),
-- When the period's own usage first reached each bound (a period that ran out says when,
-- not the end of the period).
crossed AS (
    SELECT k.scope, k.budget_id, k.period_start,
           min(u.occurred_at) FILTER (WHERE k.max_tokens IS NOT NULL
                                        AND u.running_tokens >= k.max_tokens)
               AS tokens_crossed_at,
           min(u.occurred_at) FILTER (WHERE k.max_cost_usd IS NOT NULL
                                        AND u.running_cost >= k.max_cost_usd)
               AS cost_crossed_at
    FROM clocked AS k
    JOIN (SELECT scope, budget_id, period_start, occurred_at,
                 sum(tokens) OVER w AS running_tokens, sum(cost_usd) OVER w AS running_cost
          FROM budget_period_usage
          WINDOW w AS (PARTITION BY scope, budget_id, period_start ORDER BY seq)) AS u
      USING (scope, budget_id, period_start)
    GROUP BY k.scope, k.budget_id, k.period_start),
joined AS (
    SELECT k.*, s.spent_tokens, s.spent_cost_usd, s.hour_tokens, s.hour_cost_usd,
           c.tokens_crossed_at, c.cost_crossed_at,
           coalesce(r.reserved_tokens, 0) AS reserved_tokens,
           coalesce(r.reserved_cost_usd, 0) AS reserved_cost_usd,
           -- A period younger than an hour averages over one: its rate so far is what
           -- it spent per hour, the same figure as the last hour's.
           greatest(epoch(k.clock - k.period_start) / 3600, 1) AS elapsed_h,
           CASE WHEN k.period_end > k.clock THEN epoch(k.period_end - k.clock) / 3600 END
               AS remaining_h
    FROM clocked AS k
    JOIN spent AS s USING (scope, budget_id, period_start)
    LEFT JOIN crossed AS c USING (scope, budget_id, period_start)
    LEFT JOIN (SELECT scope, budget_id, period_start, sum(reserved_tokens) AS reserved_tokens,
                      sum(reserved_cost_usd) AS reserved_cost_usd
               FROM budget_reserved GROUP BY ALL) AS r
      USING (scope, budget_id, period_start)),
left_over AS (
    SELECT j.*, j.max_tokens - j.spent_tokens - j.reserved_tokens AS tokens_left,
           j.max_cost_usd - j.spent_cost_usd - j.reserved_cost_usd AS cost_left,
           -- A period that is over is not forecast: it ran out, or it did not.
           j.period_end IS NULL OR j.period_end > now() AS open
    FROM joined AS j),
runway AS (
    SELECT l.*,
           CASE WHEN l.tokens_left <= 0
                    THEN coalesce(l.tokens_crossed_at, l.exhausted_at, l.clock)
                WHEN l.hour_tokens > 0 AND l.open
                    THEN l.clock + to_seconds(3600 * l.tokens_left / l.hour_tokens) END
               AS tokens_exhausted_at,
           CASE WHEN l.cost_left <= 0
                    THEN coalesce(l.cost_crossed_at, l.exhausted_at, l.clock)
                WHEN l.hour_cost_usd > 0 AND l.open
                    THEN l.clock + to_seconds(CAST(3600 * l.cost_left / l.hour_cost_usd AS DOUBLE))
                END AS cost_exhausted_at
    FROM left_over AS l)
SELECT scope, budget_id, name, period, ledger, period_start, period_end, state, max_tokens,
       max_cost_usd, spent_tokens, spent_cost_usd, reserved_tokens, reserved_cost_usd,
       tokens_left, cost_left AS cost_left_usd,
       hour_tokens AS burn_tokens_per_hour_last_hour,
       hour_cost_usd AS burn_usd_per_hour_last_hour,
       CAST(spent_tokens / elapsed_h AS DOUBLE) AS burn_tokens_per_hour_period,
       CAST(spent_cost_usd / elapsed_h AS DECIMAL(38, 12))
           AS burn_usd_per_hour_period,
       CASE WHEN period_end <= clock THEN spent_tokens + reserved_tokens
            WHEN remaining_h IS NOT NULL
                THEN CAST(round(spent_tokens + reserved_tokens + hour_tokens * remaining_h)
                          AS BIGINT) END AS projected_period_tokens,
       CASE WHEN period_end <= clock THEN spent_cost_usd + reserved_cost_usd
            WHEN remaining_h IS NOT NULL
                THEN CAST(spent_cost_usd + reserved_cost_usd
                          + hour_cost_usd * CAST(remaining_h AS DECIMAL(18, 6))
                          AS DECIMAL(38, 12)) END AS projected_period_cost_usd,
       least(tokens_exhausted_at, cost_exhausted_at) AS projected_exhaustion_at,
       CASE WHEN tokens_exhausted_at IS NULL AND cost_exhausted_at IS NULL THEN NULL
            WHEN cost_exhausted_at IS NULL OR tokens_exhausted_at <= cost_exhausted_at
                THEN 'tokens' ELSE 'cost' END AS exhausted_by,
       least(tokens_exhausted_at, cost_exhausted_at)
           <= coalesce(period_end, CAST('infinity' AS TIMESTAMPTZ)) AS exhausts_within_period,
       clock AS forecast_at
FROM runway
"""

_QUOTA_DAILY = """
CREATE OR REPLACE VIEW quota_daily AS
WITH calls AS (
    SELECT CAST(occurred_at AT TIME ZONE 'UTC' AS DATE) AS day, provider, model, occurred_at,
           outcome, tokens_in, cached_tokens_in, cache_write_tokens_in, tokens_out,
           tokens_in + cached_tokens_in + cache_write_tokens_in + tokens_out AS tokens,
           cost_usd
    FROM usage),
days AS (
    SELECT day, provider, model, count(*) AS calls,
           count(*) FILTER (WHERE outcome <> 'ok') AS errors,
           CAST(sum(tokens_in) AS BIGINT) AS tokens_in,
           CAST(sum(cached_tokens_in) AS BIGINT) AS cached_tokens_in,
           CAST(sum(cache_write_tokens_in) AS BIGINT) AS cache_write_tokens_in,
           CAST(sum(tokens_out) AS BIGINT) AS tokens_out, CAST(sum(tokens) AS BIGINT) AS tokens,
           sum(cost_usd) AS cost_usd,
           count(*) FILTER (WHERE occurred_at > now() - INTERVAL 1 HOUR) AS last_hour_calls,
           CAST(coalesce(sum(tokens) FILTER (WHERE occurred_at > now() - INTERVAL 1 HOUR), 0)
                AS BIGINT) AS last_hour_tokens,
           coalesce(sum(cost_usd) FILTER (WHERE occurred_at > now() - INTERVAL 1 HOUR), 0)
               AS last_hour_cost_usd,
           timezone('UTC', CAST(day AS TIMESTAMP) + INTERVAL 1 DAY) AS day_end
    FROM calls GROUP BY day, provider, model),
paced AS (
    SELECT d.*, CASE WHEN d.day_end > now() THEN epoch(d.day_end - now()) / 3600 ELSE 0 END
               AS remaining_h,
           m.quota_tokens_per_day, m.quota_requests_per_day, m.quota_cost_usd_per_day
    FROM days AS d LEFT JOIN models AS m ON m.model = d.model),
projected AS (
    SELECT p.*,
           CAST(round(calls + last_hour_calls * remaining_h) AS BIGINT) AS projected_calls,
           CAST(round(tokens + last_hour_tokens * remaining_h) AS BIGINT) AS projected_tokens,
           CAST(cost_usd + last_hour_cost_usd * CAST(remaining_h AS DECIMAL(18, 6))
                AS DECIMAL(38, 12)) AS projected_cost_usd,
           -- Hours from now until each bound is reached at the last hour's pace.
           (quota_tokens_per_day - tokens) / nullif(last_hour_tokens, 0) AS tokens_runway_h,
           (quota_requests_per_day - calls) / nullif(last_hour_calls, 0) AS calls_runway_h,
           CAST((quota_cost_usd_per_day - cost_usd) / nullif(last_hour_cost_usd, 0) AS DOUBLE)
               AS cost_runway_h
    FROM paced AS p),
used AS (
    SELECT j.*,
           100 * greatest(tokens / quota_tokens_per_day, calls / quota_requests_per_day,
                          CAST(cost_usd / quota_cost_usd_per_day AS DOUBLE)) AS used_pct,
           100 * greatest(projected_tokens / quota_tokens_per_day,
                          projected_calls / quota_requests_per_day,
                          CAST(projected_cost_usd / quota_cost_usd_per_day AS DOUBLE))
               AS projected_pct,
           least(tokens_runway_h, calls_runway_h, cost_runway_h) AS runway_h
    FROM projected AS j)
SELECT day, provider, model, calls, errors, tokens_in, cached_tokens_in, cache_write_tokens_in,
       tokens_out, tokens, cost_usd, last_hour_calls, last_hour_tokens, last_hour_cost_usd,
       CAST(round(remaining_h, 4) AS DOUBLE) AS hours_left, projected_calls, projected_tokens,
       projected_cost_usd, quota_tokens_per_day, quota_requests_per_day, quota_cost_usd_per_day,
       CAST(round(used_pct, 2) AS DOUBLE) AS quota_used_pct,
       CAST(round(projected_pct, 2) AS DOUBLE) AS projected_quota_pct,
       CASE WHEN remaining_h = 0 THEN NULL
            WHEN used_pct >= 100 THEN now()
            WHEN runway_h < remaining_h THEN now() + to_seconds(3600 * runway_h) END
           AS quota_exhausted_at
FROM used
"""

DAILY_CALLS = (
    Col("day", ColType.DATE, doc="the UTC day"),
    Col("provider", ColType.TEXT, doc="who served the calls"),
    Col("model", ColType.TEXT, doc="the model called"),
    Col("calls", ColType.BIGINT, doc="UsageRecorded events"),
)
"""The key and call count of the views by UTC day, provider and model."""

_SCOPE = Col("scope", ColType.TEXT, doc="a budget's scope (shared, run, session, day); run: a "
              "run's own budget; day with budget_id 'day': the whole UTC day")
_BUDGET_ID = Col("budget_id", ColType.TEXT, doc="the budget's id (a run's own: the run id)")
_PERIOD = Col("period", ColType.TEXT, doc="total (the budget's whole life) or day")
_LEDGER = Col("ledger", ColType.TEXT,
              doc="the ledger the period's spending counts on (see budget_ledger)")
_PERIOD_START = Col("period_start", ColType.TIME, doc="when the period began")

FORECAST_VIEWS = (
    (TableDoc("budget_periods", "Every budget, one row per period it counts spending over: "
              "its whole life, or each day of a daily budget (in its time zone) with spending "
              "and today; runs' own budgets; every UTC day.", (
                  _SCOPE, _BUDGET_ID,
                  Col("name", ColType.TEXT, doc="its name"),
                  _PERIOD, _LEDGER, _PERIOD_START,
                  Col("period_end", ColType.TIME, doc="when it ends or ended (null: open)"),
                  Col("max_tokens", ColType.BIGINT, doc="token limit (null: none)"),
                  Col("max_cost_usd", ColType.MONEY, doc="cost limit (null: none)"),
                  Col("state", ColType.TEXT, doc="the budget's or the run's state"),
                  Col("exhausted_at", ColType.TIME, doc="when spending reached a limit")),
              kind="view"), _BUDGET_PERIODS),
    (TableDoc("budget_period_usage", "Each usage row counted against a budget period.", (
        _SCOPE, _BUDGET_ID, _PERIOD_START,
        Col("seq", ColType.BIGINT, doc="stream sequence of the UsageRecorded event"),
        Col("occurred_at", ColType.TIME, doc="when the usage was recorded"),
        Col("tokens", ColType.BIGINT, doc="tokens_in + tokens_out, as budgets count them"),
        Col("cost_usd", ColType.MONEY, doc="its cost")), kind="view"), _BUDGET_PERIOD_USAGE),
    (TableDoc("budget_reserved", "Live reservations (budget.reserve) per budget period.", (
                  _SCOPE, _BUDGET_ID, _PERIOD_START,
                  Col("reserved_tokens", ColType.BIGINT, doc="tokens held by live reservations"),
                  Col("reserved_cost_usd", ColType.MONEY, doc="cost held by live reservations")),
              kind="view"), _BUDGET_RESERVED),
    (TableDoc("budget_forecast", "Per budget and period: spent, reserved, burn rates over "
              "the last hour and the period, projected end-of-period spend and when the "
              "budget runs out at the last hour's pace; computed at query time.", (
                  _SCOPE, _BUDGET_ID,
                  Col("name", ColType.TEXT, doc="its name"),
                  _PERIOD, _LEDGER, _PERIOD_START,
                  Col("period_end", ColType.TIME, doc="when it ends or ended (null: open)"),
                  Col("state", ColType.TEXT, doc="the budget's or the run's state"),
                  Col("max_tokens", ColType.BIGINT, doc="token limit (null: none)"),
                  Col("max_cost_usd", ColType.MONEY, doc="cost limit (null: none)"),
                  Col("spent_tokens", ColType.BIGINT, doc="tokens spent in the period"),
                  Col("spent_cost_usd", ColType.MONEY, doc="cost spent in the period"),
                  Col("reserved_tokens", ColType.BIGINT, doc="tokens held by live reservations"),
                  Col("reserved_cost_usd", ColType.MONEY, doc="cost held by live reservations"),
                  Col("tokens_left", ColType.BIGINT, doc="limit - spent - reserved"),
                  Col("cost_left_usd", ColType.MONEY, doc="limit - spent - reserved"),
                  Col("burn_tokens_per_hour_last_hour", ColType.BIGINT,
                      doc="tokens spent in the hour before forecast_at"),
                  Col("burn_usd_per_hour_last_hour", ColType.MONEY,
                      doc="cost spent in the hour before forecast_at"),
                  Col("burn_tokens_per_hour_period", ColType.DOUBLE,
                      doc="tokens per hour, averaged over the period so far (at least "
                      "an hour)"),
                  Col("burn_usd_per_hour_period", ColType.MONEY,
                      doc="USD per hour, averaged over the period so far (at least an "
                      "hour)"),
                  Col("projected_period_tokens", ColType.BIGINT,
                      doc="spent + reserved + the last hour's pace until the period ends "
                      "(null: the period is open-ended)"),
                  Col("projected_period_cost_usd", ColType.MONEY,
                      doc="the same, in USD"),
                  Col("projected_exhaustion_at", ColType.TIME,
                      doc="when a limit is reached at the last hour's pace (when it was, if "
                      "it was; null: no limit, nothing spent in the last hour, or the "
                      "period is over)"),
                  Col("exhausted_by", ColType.TEXT, doc="tokens or cost: the limit reached first"),
                  Col("exhausts_within_period", ColType.BOOL,
                      doc="whether that happens before the period ends"),
                  Col("forecast_at", ColType.TIME,
                      doc="the clock of the forecast: now, or the period's end once over")),
              kind="view"), _BUDGET_FORECAST),
    (TableDoc("quota_daily", "Usage per UTC day, provider and model against a daily quota: "
              "every token kind, the last hour's pace and the day's projected end.", (
                  *DAILY_CALLS,
                  Col("errors", ColType.BIGINT, doc="calls whose outcome is not ok"),
                  Col("tokens_in", ColType.BIGINT, doc="uncached input tokens"),
                  Col("cached_tokens_in", ColType.BIGINT, doc="input read from the cache"),
                  Col("cache_write_tokens_in", ColType.BIGINT, doc="input written to the cache"),
                  Col("tokens_out", ColType.BIGINT, doc="output tokens"),
                  Col("tokens", ColType.BIGINT, doc="all four"),
                  Col("cost_usd", ColType.MONEY, doc="cost of the day's calls"),
                  Col("last_hour_calls", ColType.BIGINT, doc="calls in the last hour"),
                  Col("last_hour_tokens", ColType.BIGINT, doc="tokens in the last hour"),
                  Col("last_hour_cost_usd", ColType.MONEY, doc="cost in the last hour"),
                  Col("hours_left", ColType.DOUBLE, doc="hours until the UTC day ends (0: past)"),
                  Col("projected_calls", ColType.BIGINT,
                      doc="calls by the day's end at the last hour's pace"),
                  Col("projected_tokens", ColType.BIGINT,
                      doc="tokens by the day's end at the last hour's pace"),
                  Col("projected_cost_usd", ColType.MONEY,
                      doc="cost by the day's end at the last hour's pace"),
                  Col("quota_tokens_per_day", ColType.BIGINT,
                      doc="the model's daily token quota (model.set_quota; null: none)"),
                  Col("quota_requests_per_day", ColType.BIGINT, doc="its daily call quota"),
                  Col("quota_cost_usd_per_day", ColType.MONEY, doc="its daily cost quota"),
                  Col("quota_used_pct", ColType.DOUBLE,
                      doc="the most used of its quotas, in percent (null: no quota)"),
                  Col("projected_quota_pct", ColType.DOUBLE,
                      doc="the same for the day's projected end"),
                  Col("quota_exhausted_at", ColType.TIME,
                      doc="when a quota is reached today at the last hour's pace (null: "
                      "not today; now: already)")),
              kind="view"), _QUOTA_DAILY),
)
