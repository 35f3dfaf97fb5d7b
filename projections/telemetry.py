"""Projector telemetry: a span per batch linked to the commands' spans, and lag/batch metrics.

Only the OpenTelemetry API is used here; whoever configures the SDK (``runlog up``)
decides where spans and metrics go. Without an SDK every call is a no-op.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from typing import Protocol

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Link, SpanContext, TraceFlags

from services.store import RecordedEvent

from .decode import parse_traceparent
from .freshness import FreshnessHistogram

__all__ = ["MAX_LINKS", "ProjectorTelemetry", "freshness_by_projector", "links_of",
           "observe_sql"]

MAX_LINKS = 128
"""A batch holds thousands of events; a span with thousands of links helps nobody."""


def links_of(records: Sequence[RecordedEvent], limit: int = MAX_LINKS) -> list[Link]:
    """Returns one link per distinct writer span among the records' ``traceparent`` headers."""
    seen: dict[tuple[str, str], Link] = {}
    for record in records:
        ref = parse_traceparent(record.headers.get("traceparent"))
        if ref is None or (ref.trace_id, ref.span_id) in seen:
            continue
        context = SpanContext(int(ref.trace_id, 16), int(ref.span_id, 16), is_remote=True,
                              trace_flags=TraceFlags(TraceFlags.SAMPLED if ref.sampled else 0))
        seen[(ref.trace_id, ref.span_id)] = Link(context, {"runlog.seq": record.seq})
        if len(seen) >= limit:
            break
    return list(seen.values())


_DURATION_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""A batch takes milliseconds: the SDK's default buckets (0 to 10,000) fit milliseconds."""

_SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000)

_live: weakref.WeakSet[ProjectorTelemetry] = weakref.WeakSet()
_gauge_lock = threading.Lock()
_gauge_registered = False


def _observe_lag(options: CallbackOptions) -> list[Observation]:
    return [Observation(t.lag, {"projector": t.name}) for t in list(_live)]


def _lag_gauge(meter: metrics.Meter) -> None:
    meter.create_observable_gauge(
        "runlog.projector.lag", callbacks=[_observe_lag], unit="{event}",
        description="Stream head minus the projector's checkpoint")


def _register_gauge() -> None:
    # One gauge for every projector of the process (replays included), created once.
    global _gauge_registered
    with _gauge_lock:
        if not _gauge_registered:
            _lag_gauge(metrics.get_meter("runlog.projections"))
            _gauge_registered = True


def freshness_by_projector() -> dict[str, FreshnessHistogram]:
    """Every live projector's freshness histogram in this process, by projector name."""
    merged: dict[str, FreshnessHistogram] = {}
    for telemetry in list(_live):
        found = merged.setdefault(telemetry.name, FreshnessHistogram())
        found.counts = [a + b for a, b in zip(found.counts, telemetry.freshness.counts,
                                               strict=True)]
        found.sum_s += telemetry.freshness.sum_s
    return merged


class _SqlLoad(Protocol):
    """What the SQL gauge reads of a SQL service."""

    @property
    def running(self) -> int: ...

    @property
    def waiting(self) -> int: ...


_sql_services: weakref.WeakSet[_SqlLoad] = weakref.WeakSet()
_sql_gauge_registered = False


def _observe_sql(options: CallbackOptions) -> list[Observation]:
    services = list(_sql_services)
    return [Observation(sum(s.running for s in services), {"state": "running"}),
            Observation(sum(s.waiting for s in services), {"state": "waiting"})]


def observe_sql(service: _SqlLoad) -> None:
    """Counts ``service``'s queries in the ``runlog.sql.queries`` gauge (running, waiting)."""
    global _sql_gauge_registered
    with _gauge_lock:
        _sql_services.add(service)
        if not _sql_gauge_registered:
            metrics.get_meter("runlog.projections").create_observable_gauge(
                "runlog.sql.queries", callbacks=[_observe_sql], unit="{query}",
                description="SQL queries of the read side running in a worker, or waiting for one")
            _sql_gauge_registered = True


class ProjectorTelemetry:
    """The instruments of one projector."""

    def __init__(
        self,
        name: str = "read_models",
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self.name = name
        self.lag = 0
        self.position = 0
        self.freshness = FreshnessHistogram()
        """How long its events took from the log to SQL (see ``projections.freshness``)."""
        self._tracer = trace.get_tracer("runlog.projections", tracer_provider=tracer_provider)
        meter = metrics.get_meter("runlog.projections", meter_provider=meter_provider)
        self._size = meter.create_histogram(
            "runlog.projector.batch.size", unit="{event}", description="Events per applied batch",
            explicit_bucket_boundaries_advisory=_SIZE_BUCKETS)
        self._duration = meter.create_histogram(
            "runlog.projector.batch.duration", unit="s", description="Time to apply one batch",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS_S)
        if meter_provider is None:
            _register_gauge()
        else:
            _lag_gauge(meter)
        _live.add(self)

    @contextlib.contextmanager
    def batch_span(self, records: Sequence[RecordedEvent]) -> Iterator[trace.Span]:
        """Wraps one batch in a span linked to the spans of the commands that wrote it.

        Once the batch is applied, each of those traces also gets a short
        ``runlog.projector.apply`` span, so a trace shows where its events were projected.
        """
        with self._tracer.start_as_current_span(
            "runlog.projector.batch", kind=trace.SpanKind.CONSUMER,
            attributes={"runlog.projector": self.name, "runlog.batch.size": len(records),
                        "runlog.batch.first_seq": records[0].seq if records else 0,
                        "runlog.batch.last_seq": records[-1].seq if records else 0},
        ) as span:
            links = links_of(records) if span.is_recording() else []
            for link in links:
                span.add_link(link.context, link.attributes)
            started_ns = time.time_ns()
            yield span
            self._apply_spans(links, span.get_span_context(), started_ns)

    def _apply_spans(self, links: Sequence[Link], batch: SpanContext, started_ns: int) -> None:
        """One child span per writer span of the batch, linked back to the batch span."""
        for link in links:
            parent = trace.set_span_in_context(trace.NonRecordingSpan(link.context))
            self._tracer.start_span(
                "runlog.projector.apply", context=parent, kind=trace.SpanKind.CONSUMER,
                links=[Link(batch)], start_time=started_ns,
                attributes={"runlog.projector": self.name, **dict(link.attributes or {})},
            ).end()

    def record_visible(self, records: Sequence[RecordedEvent]) -> None:
        """Counts a committed batch's events in the freshness histogram (ages as of now)."""
        self.freshness.observe_stored([r.stored_ns for r in records], time.time_ns())

    def record(self, size: int, duration_s: float, position: int, head: int) -> None:
        """Records one applied batch."""
        attributes = {"projector": self.name}
        self._size.record(size, attributes)
        self._duration.record(duration_s, attributes)
        self.position = position
        self.lag = max(head - position, 0)
