"""OpenTelemetry set-up from the standard ``OTEL_*`` variables, with batched export.

``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` choose ``none`` (the default),
``console`` (written to stderr, so a verb's output on stdout stays clean) or ``otlp``
(``OTEL_EXPORTER_OTLP_PROTOCOL`` ``http/protobuf``, the default, or ``grpc`` when
``opentelemetry-exporter-otlp-proto-grpc`` is installed); ``OTEL_SERVICE_NAME``,
``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_BSP_*`` are
read by the SDK itself. ``OTEL_SDK_DISABLED=true`` turns everything off. Spans are
always exported through a ``BatchSpanProcessor``: a synchronous one halves throughput.

``prometheus_registry`` makes the same metrics readable by ``/metrics``;
``traced_request`` is the client span of ``runlog send``.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from prometheus_client import CollectorRegistry

__all__ = [
    "configure_telemetry",
    "extract_context",
    "inject_context",
    "policy_span",
    "prometheus_registry",
    "trace_headers_of",
    "trace_id_of",
    "traced_request",
    "tracing_enabled",
]

log = logging.getLogger(__name__)

_OTLP_MODULES = {"http/protobuf": "http", "grpc": "grpc"}
_TRACE_HEADERS = ("traceparent", "tracestate")


def _exporter(kind: str, signal: str, env: Mapping[str, str]) -> Any:
    if kind == "console":
        # Spans and metrics on stdout would mix with what a verb prints there.
        if signal == "traces":
            return ConsoleSpanExporter(out=sys.stderr)
        return ConsoleMetricExporter(out=sys.stderr)
    if kind == "otlp":
        protocol = env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        if protocol not in _OTLP_MODULES:
            raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported here")
        name = "trace_exporter" if signal == "traces" else "metric_exporter"
        module = importlib.import_module(
            f"opentelemetry.exporter.otlp.proto.{_OTLP_MODULES[protocol]}.{name}")
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
    _configure_metrics(env.get("OTEL_METRICS_EXPORTER", "none"), resource, env)
    traces_kind = env.get("OTEL_TRACES_EXPORTER", "none")
    if span_processor is None and traces_kind == "none":
        # No provider at all: the command path then skips span work entirely and
        # only carries the caller's traceparent onto the events.
        return None
    provider = TracerProvider(resource=resource)
    if span_processor is not None:
        provider.add_span_processor(span_processor)
    else:
        exporter: SpanExporter = _exporter(traces_kind, "traces", env)
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def _configure_metrics(kind: str, resource: Resource, env: Mapping[str, str]) -> None:
    if kind == "none":
        return
    exporter: MetricExporter = _exporter(kind, "metrics", env)
    # A provider takes its readers only when it is made: the one /metrics reads is added
    # now, in case this process serves HTTP later (it costs nothing until scraped).
    _install_meter_provider(resource, PeriodicExportingMetricReader(exporter))


_bridged: list[MeterProvider] = []
"""The meter providers made here, each with a reader feeding Prometheus's registry."""


def _install_meter_provider(resource: Resource, *readers: MetricReader) -> None:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    provider = MeterProvider(resource=resource, metric_readers=[
        *readers, PrometheusMetricReader(scope_info_enabled=False)])
    _bridged.append(provider)
    metrics.set_meter_provider(provider)


def prometheus_registry() -> CollectorRegistry:
    """The Prometheus registry holding this process's OpenTelemetry metrics (and its own).

    Installs a meter provider that feeds it, unless ``configure_telemetry`` already did.
    """
    from prometheus_client import REGISTRY

    installed = metrics.get_meter_provider()
    if not any(installed is provider for provider in _bridged):
        if isinstance(installed, MeterProvider):
            log.warning("a meter provider without a Prometheus reader is installed: "
                        "/metrics shows the read models only")
        else:
            _install_meter_provider(Resource.create(
                {"service.name": os.environ.get("OTEL_SERVICE_NAME", "runlog")}))
    return REGISTRY


def tracing_enabled() -> bool:
    """Whether an SDK tracer provider is installed (else every span would be a no-op)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def trace_headers_of(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Only the W3C trace context among a message's headers."""
    return {k: headers[k] for k in _TRACE_HEADERS if k in headers} if headers else {}


@contextlib.contextmanager
def _client_span(subject: str) -> Iterator[dict[str, str]]:
    """A CLIENT span around one request; yields the headers that carry it."""
    if not tracing_enabled():
        # Nothing records, yet the request must carry a trace id: the service keeps it
        # on the events it writes (``transitions.trace_id``). Sampled, so a service that
        # does export records its part of the trace.
        ids = RandomIdGenerator()
        context = SpanContext(ids.generate_trace_id(), ids.generate_span_id(), is_remote=False,
                              trace_flags=TraceFlags(TraceFlags.SAMPLED))
        with trace.use_span(NonRecordingSpan(context)):
            yield inject_context()
        return
    tracer = trace.get_tracer("runlog.client")
    with tracer.start_as_current_span(
        f"{subject} request", kind=SpanKind.CLIENT,
        attributes={"messaging.system": "nats", "messaging.destination.name": subject},
    ):
        yield inject_context()


@contextlib.contextmanager
def policy_span(policy: str, trigger_headers: Mapping[str, str] | None
                ) -> Iterator[dict[str, str]]:
    """A policy's reaction to one event, in that event's trace.

    Yields the headers the policy's commands carry, so they and the events they write
    join the trace of the command that wrote the trigger, exporter or not.
    """
    if not tracing_enabled():
        yield trace_headers_of(trigger_headers)
        return
    with trace.get_tracer("runlog.policies").start_as_current_span(
        f"runlog.policy {policy}", context=extract_context(trigger_headers),
        kind=SpanKind.CONSUMER, attributes={"runlog.policy": policy},
    ):
        yield inject_context()


async def traced_request(nc: Client, subject: str, body: bytes, timeout_s: float) -> Msg:
    """``nc.request`` inside a client span whose ``traceparent`` the request carries."""
    with _client_span(subject) as headers:
        return await nc.request(subject, body, timeout=timeout_s, headers=headers)


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
