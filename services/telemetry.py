"""OpenTelemetry set-up from the standard ``OTEL_*`` variables, with batched export.

``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` choose ``none`` (the default),
``console`` or ``otlp`` (when ``opentelemetry-exporter-otlp`` is installed);
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_BSP_*`` are read by
the SDK itself. ``OTEL_SDK_DISABLED=true`` turns everything off. Spans are always
exported through a ``BatchSpanProcessor``: a synchronous one halves throughput.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

__all__ = ["configure_telemetry", "extract_context", "inject_context", "trace_id_of"]

log = logging.getLogger(__name__)


def _exporter(kind: str, signal: str) -> Any:
    if kind == "console":
        return ConsoleSpanExporter() if signal == "traces" else ConsoleMetricExporter()
    if kind == "otlp":
        name = "trace_exporter" if signal == "traces" else "metric_exporter"
        module = importlib.import_module(f"opentelemetry.exporter.otlp.proto.grpc.{name}")
        return module.OTLPSpanExporter() if signal == "traces" else module.OTLPMetricExporter()
    raise ValueError(f"OTEL_{signal.upper()}_EXPORTER={kind!r} is not supported here")


def configure_telemetry(
    service_name: str = "runlog", span_processor: SpanProcessor | None = None,
    env: Mapping[str, str] | None = None,
) -> TracerProvider | None:
    """Installs the global tracer and meter providers; returns the tracer provider.

    ``span_processor`` replaces the exporter chosen by the environment (tests pass
    one around an in-memory exporter).
    """
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", service_name)})
    _configure_metrics(env.get("OTEL_METRICS_EXPORTER", "none"), resource)
    traces_kind = env.get("OTEL_TRACES_EXPORTER", "none")
    if span_processor is None and traces_kind == "none":
        # No provider at all: the command path then skips span work entirely and
        # only carries the caller's traceparent onto the events.
        return None
    provider = TracerProvider(resource=resource)
    if span_processor is not None:
        provider.add_span_processor(span_processor)
    else:
        exporter: SpanExporter = _exporter(traces_kind, "traces")
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def _configure_metrics(kind: str, resource: Resource) -> None:
    if kind == "none":
        return
    exporter: MetricExporter = _exporter(kind, "metrics")
    reader = PeriodicExportingMetricReader(exporter)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))


def extract_context(headers: Mapping[str, str] | None) -> Context | None:
    """The trace context a request or event carries in its NATS headers (W3C traceparent)."""
    if not headers or "traceparent" not in headers:
        return None
    return propagate.extract(dict(headers))


def inject_context() -> dict[str, str]:
    """Headers carrying the current span's trace context, empty when nothing is traced."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id inside a W3C ``traceparent`` header value."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None
