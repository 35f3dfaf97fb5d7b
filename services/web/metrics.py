"""``/metrics``: Prometheus text built by prometheus-client, never by hand.

Two sources: the OpenTelemetry instruments of this process (command rate and
latency, append latency, projector batches and lag), bridged by the OTel Prometheus
reader, and gauges read from the read models at each scrape (queue depth, leases,
runs, tasks, workers, breakers, budgets, usage, projection lag, health).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from projections.freshness import FreshnessHistogram
from projections.telemetry import freshness_by_projector
from services.health import HealthReport, Observation

from . import queries
from .reads import ReadModels, Rows

__all__ = ["CONTENT_TYPE", "ReadModelSnapshot", "exposition", "read_snapshot", "snapshot_families"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""What prometheus-client's text format is served as."""

_STATEMENTS = {
    "runs": queries.METRIC_RUNS, "tasks": queries.METRIC_TASKS,
    "workers": queries.METRIC_WORKERS, "queue": queries.METRIC_QUEUE,
    "leases": queries.METRIC_LEASES, "breakers": queries.METRIC_BREAKERS,
    "budgets": queries.METRIC_BUDGETS, "usage": queries.METRIC_USAGE,
}
_STATUS_VALUE = {"ok": 0, "degraded": 1, "down": 2}


@dataclass(frozen=True, slots=True)
class ReadModelSnapshot:
    """What one scrape read: the read models' rows and the health report."""

    sections: Mapping[str, Rows] = field(default_factory=dict)
    report: HealthReport | None = None
    facts: Observation | None = None
    error: str | None = None
    """Why the read models could not be read (the gauges from them are then missing)."""


async def read_snapshot(reads: ReadModels, report: HealthReport, facts: Observation
                        ) -> ReadModelSnapshot:
    """Reads every gauge's rows; a read side that does not answer leaves them out."""
    try:
        sections = await reads.sections(_STATEMENTS)
    except Exception as error:  # /metrics must answer even with the read side gone
        return ReadModelSnapshot(report=report, facts=facts, error=str(error) or "unavailable")
    return ReadModelSnapshot(sections, report, facts)


def _gauge(name: str, doc: str, labels: Iterable[str], rows: Rows, value: str,
           label_columns: Iterable[str] | None = None) -> GaugeMetricFamily:
    """One gauge family with a sample per row; ``value`` names the column holding it."""
    label_names = list(labels)
    columns = list(label_columns) if label_columns is not None else label_names
    family = GaugeMetricFamily(name, doc, labels=label_names)
    for row in rows:
        number = row.get(value)
        if isinstance(number, (int, float)):
            family.add_metric([str(row.get(c) or "") for c in columns], float(number))
    return family


def _read_model_families(sections: Mapping[str, Rows]) -> Iterator[Metric]:
    yield _gauge("runlog_runs", "Runs by state.", ["state"], sections["runs"], "runs")
    yield _gauge("runlog_tasks", "Tasks by state.", ["state"], sections["tasks"], "tasks")
    yield _gauge("runlog_workers", "Workers by state.", ["state"], sections["workers"],
                 "workers")
    yield _gauge("runlog_queue_depth", "Queued tasks by kind.", ["kind"], sections["queue"],
                 "queued")
    yield _gauge("runlog_leases", "Leased or running tasks by kind.", ["kind"],
                 sections["leases"], "leases")
    yield _breaker_family(sections["breakers"])
    budgets = sections["budgets"]
    yield _gauge("runlog_budget_used_ratio", "Share of a shared budget spent (the tighter of "
                 "tokens and cost).", ["budget_id"], budgets, "used")
    yield _gauge("runlog_budget_spent_tokens", "Tokens charged to a shared budget.",
                 ["budget_id"], budgets, "spent_tokens")
    yield _gauge("runlog_budget_spent_cost_usd", "Cost charged to a shared budget.",
                 ["budget_id"], budgets, "spent_cost_usd")
    usage = sections["usage"]
    yield _gauge("runlog_usage_cost_usd", "Cost of all recorded usage by model.", ["model"],
                 usage, "cost_usd")
    yield _gauge("runlog_usage_calls", "Recorded model calls by model.", ["model"], usage,
                 "calls")
    yield _gauge("runlog_usage_tokens_in", "Input tokens by model.", ["model"], usage,
                 "tokens_in")
    yield _gauge("runlog_usage_tokens_out", "Output tokens by model.", ["model"], usage,
                 "tokens_out")


def _breaker_family(rows: Rows) -> GaugeMetricFamily:
    family = GaugeMetricFamily("runlog_breaker_open", "1 when a circuit breaker is open, 0.5 "
                               "when half-open, 0 when closed.", labels=["breaker_id"])
    for row in rows:
        state = row.get("state")
        family.add_metric([str(row.get("breaker_id"))],
                          1.0 if state == "open" else 0.5 if state == "half_open" else 0.0)
    return family


def _health_families(snapshot: ReadModelSnapshot) -> Iterator[Metric]:
    yield GaugeMetricFamily("runlog_read_models_up", "1 when the read models answered this "
                            "scrape.", value=0.0 if snapshot.error else 1.0)
    if snapshot.report is not None:
        yield GaugeMetricFamily("runlog_health_status", "0 ok, 1 degraded, 2 down (as "
                                "`runlog health`).",
                                value=float(_STATUS_VALUE[str(snapshot.report.status)]))
        checks = GaugeMetricFamily("runlog_health_check_status", "Each health check: 0 ok, "
                                   "1 degraded, 2 down.", labels=["check"])
        for check in snapshot.report.checks:
            checks.add_metric([check.name], float(_STATUS_VALUE[str(check.status)]))
        yield checks
    facts = snapshot.facts
    if facts is not None and facts.stream_last_seq is not None:
        yield GaugeMetricFamily("runlog_stream_last_seq", "The log's last stream sequence.",
                                value=float(facts.stream_last_seq))
        lag = GaugeMetricFamily("runlog_projection_lag_events", "Events a projection is "
                                "behind the log's head.", labels=["projection"])
        for row in facts.checkpoints:
            behind = facts.stream_last_seq - int(row.get("last_seq") or 0)
            lag.add_metric([str(row.get("projection"))], float(max(behind, 0)))
        yield lag


def freshness_family(by_projector: Mapping[str, FreshnessHistogram]) -> HistogramMetricFamily:
    """``runlog_projector_freshness_seconds``: each event's time from the log to SQL."""
    family = HistogramMetricFamily(
        "runlog_projector_freshness_seconds", "Time from an event being stored on the log to "
        "its rows being visible in SQL (the projector's commit), per event.",
        labels=["projector"])
    for name, histogram in sorted(by_projector.items()):
        buckets = [("+Inf" if bound == float("inf") else repr(bound), float(n))
                   for bound, n in histogram.cumulative()]
        family.add_metric([name], buckets, histogram.sum_s)
    return family


def snapshot_families(snapshot: ReadModelSnapshot) -> list[Metric]:
    """Every gauge of one scrape, and the projectors' freshness."""
    families = [freshness_family(freshness_by_projector()), *_health_families(snapshot)]
    if snapshot.error is None:
        families.extend(_read_model_families(snapshot.sections))
    return families


class _Snapshot(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def exposition(process_registry: CollectorRegistry, snapshot: ReadModelSnapshot) -> bytes:
    """The text of one scrape: this process's metrics, then the read models' gauges."""
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(_Snapshot(snapshot_families(snapshot)))
    return generate_latest(process_registry) + generate_latest(scrape)
