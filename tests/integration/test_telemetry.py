"""OpenTelemetry on the command path: spans, trace context kept on events, metrics, set-up.

The OTel API lets a process install one global tracer (and meter) provider, and the
executor decides at construction whether to trace. So the traced tests share one
SDK provider installed for this module only (and uninstalled after it), and the
untraced path runs in a fresh interpreter where no provider was ever installed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.js.errors import NotFoundError
from opentelemetry import metrics, trace
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once

from events import event_subject
from services import telemetry
from services.bootstrap import Instance, serve
from services.settings import Settings
from services.telemetry import configure_telemetry, extract_context, inject_context, trace_id_of
from tests.support.nats_server import unique_stream_name

REPO_ROOT = Path(__file__).resolve().parents[2]


# -- helpers -------------------------------------------------------------------------


def new_traceparent() -> tuple[str, str, str]:
    """A caller's W3C traceparent, with its trace id and span id."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def hex_id(value: int, width: int) -> str:
    """An OTel integer id as the lowercase hex a traceparent carries."""
    return format(value, f"0{width}x")


def server_span(spans: Sequence[ReadableSpan], subject: str) -> ReadableSpan:
    """The one SERVER span the service made for a command on ``subject``."""
    found = [s for s in spans if s.name == f"runlog.cmd.{subject} process"]
    assert len(found) == 1, f"expected one span for {subject}, got {[s.name for s in spans]}"
    assert found[0].kind is SpanKind.SERVER
    return found[0]


def children_of(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> dict[str, ReadableSpan]:
    """The spans whose parent is ``parent``, by name."""
    assert parent.context is not None
    return {s.name: s for s in spans
            if s.parent is not None and s.parent.span_id == parent.context.span_id}


async def send(nc: Client, subject: str, body: dict[str, Any],
               headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Sends one command as a NATS request and decodes the reply."""
    msg = await nc.request(f"runlog.cmd.{subject}", json.dumps(body).encode(), timeout=5,
                           headers=headers)
    reply: dict[str, Any] = json.loads(msg.data)
    return reply


async def event_headers(instance: Instance, aggregate: str, aggregate_id: str
                        ) -> list[dict[str, str]]:
    """The headers of every event one aggregate has in the log."""
    subject = event_subject(aggregate, aggregate_id)
    return [dict(e.headers) for e in await instance.store.read_subject(subject)]


def uninstall_tracer_provider() -> None:
    """Returns the OTel trace API to its never-configured state, so later tests run untraced."""
    # The API has no public way to replace a global provider; this mirrors
    # opentelemetry-test-utils' reset_trace_globals.
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None


def uninstall_meter_provider() -> None:
    """Returns the OTel metrics API to its never-configured state (see above)."""
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()
    metrics_internal._METER_PROVIDER = None


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """The SDK tracer provider, installed by configure_telemetry for this module only."""
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        pytest.fail("a tracer provider was installed before this module; it cannot install its own")
    exporter = InMemorySpanExporter()
    provider = configure_telemetry(span_processor=SimpleSpanProcessor(exporter), env={})
    assert provider is not None
    assert trace.get_tracer_provider() is provider
    yield exporter
    provider.shutdown()
    uninstall_tracer_provider()


@pytest.fixture(scope="module")
def metric_reader() -> Iterator[InMemoryMetricReader]:
    """A global meter provider read in memory, for this module only."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics.set_meter_provider(provider)
    if metrics.get_meter_provider() is not provider:
        pytest.fail("a meter provider was installed before this module; it cannot install its own")
    yield reader
    provider.shutdown()
    uninstall_meter_provider()


@pytest.fixture
async def instance(nats_url: str, nc: Client, tmp_path: Path,
                   spans: InMemorySpanExporter) -> AsyncIterator[Instance]:
    """The whole service in-process on its own stream, built after tracing is installed."""
    settings = Settings(nats_url=nats_url, data_dir=tmp_path, stream=unique_stream_name())
    try:
        async with serve(settings, nats_url, projectors=False) as running:
            spans.clear()  # forget the price-list seeding done at start
            yield running
    finally:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(settings.stream)


# -- traces ---------------------------------------------------------------------------


@pytest.mark.nats
async def test_command_span_continues_the_callers_trace(
        instance: Instance, nc: Client, spans: InMemorySpanExporter) -> None:
    traceparent, trace_id, caller_span_id = new_traceparent()
    reply = await send(nc, "run.create", {"run_id": "traced", "name": "traced run"},
                       {"traceparent": traceparent, "tracestate": "vendor=abc"})
    assert reply["ok"], reply

    in_trace = [s for s in spans.get_finished_spans()
                if s.context is not None and hex_id(s.context.trace_id, 32) == trace_id]
    server = server_span(in_trace, "run.create")
    assert server.parent is not None
    assert server.parent.is_remote
    assert hex_id(server.parent.span_id, 16) == caller_span_id
    assert server.attributes is not None
    assert server.attributes["runlog.outcome"] == "ok"
    assert server.attributes["messaging.destination.name"] == "runlog.cmd.run.create"
    children = children_of(in_trace, server)
    assert set(children) == {"validate", "decide", "append"}
    assert children["append"].kind is SpanKind.PRODUCER


@pytest.mark.nats
async def test_event_carries_the_trace_context_of_its_command(
        instance: Instance, nc: Client, spans: InMemorySpanExporter) -> None:
    traceparent, trace_id, _ = new_traceparent()
    reply = await send(nc, "run.create", {"run_id": "carried", "name": "carried"},
                       {"traceparent": traceparent, "tracestate": "vendor=abc"})
    assert reply["ok"], reply

    [headers] = await event_headers(instance, "run", "carried")
    assert trace_id_of(headers.get("traceparent")) == trace_id
    assert headers.get("tracestate") == "vendor=abc"
    # The event names a span the service made, so the trace shows where it was written.
    service_span_ids = {hex_id(s.context.span_id, 16) for s in spans.get_finished_spans()
                        if s.context is not None}
    assert headers["traceparent"].split("-")[2] in service_span_ids


@pytest.mark.nats
@pytest.mark.parametrize(
    ("subject", "body", "code", "steps"),
    [
        ("run.create", {}, "validation_failed", {"validate"}),
        ("run.start", {"run_id": "missing"}, "not_found", {"validate", "decide"}),
    ],
)
async def test_failed_command_records_its_error_code_on_the_span(
        instance: Instance, nc: Client, spans: InMemorySpanExporter, subject: str,
        body: dict[str, Any], code: str, steps: set[str]) -> None:
    traceparent, _, _ = new_traceparent()
    reply = await send(nc, subject, body, {"traceparent": traceparent})
    assert reply["error"]["code"] == code

    finished = spans.get_finished_spans()
    server = server_span(finished, subject)
    assert server.attributes is not None
    assert server.attributes["runlog.outcome"] == code
    # A refused command is the caller's mistake, not a server fault.
    assert server.status.status_code is StatusCode.UNSET
    assert set(children_of(finished, server)) == steps


@pytest.mark.nats
async def test_command_without_traceparent_starts_a_new_trace(
        instance: Instance, nc: Client, spans: InMemorySpanExporter) -> None:
    reply = await send(nc, "run.create", {"run_id": "fresh", "name": "fresh"})
    assert reply["ok"], reply

    server = server_span(spans.get_finished_spans(), "run.create")
    assert server.parent is None
    assert server.context is not None
    [headers] = await event_headers(instance, "run", "fresh")
    assert trace_id_of(headers.get("traceparent")) == hex_id(server.context.trace_id, 32)


# -- the untraced path, in a process that never installs a tracer provider ------------


async def untraced_event_headers(url: str, data_dir: str, traceparent: str,
                                 tracestate: str) -> dict[str, str]:
    """Runs the service with no tracer provider, sends one command, returns its event's headers."""
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    settings = Settings(nats_url=url, data_dir=Path(data_dir), stream=unique_stream_name())
    nc = await nats.connect(url)
    try:
        async with serve(settings, url, projectors=False) as running:
            reply = await send(nc, "run.create", {"run_id": "untraced", "name": "untraced"},
                               {"traceparent": traceparent, "tracestate": tracestate})
            assert reply["ok"], reply
            [headers] = await event_headers(running, "run", "untraced")
            return headers
    finally:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(settings.stream)
        await nc.close()


_UNTRACED_SCRIPT = (
    "import asyncio, json, sys\n"
    "from tests.integration.test_telemetry import untraced_event_headers\n"
    "print(json.dumps(asyncio.run(untraced_event_headers(*sys.argv[1:]))))\n"
)


@pytest.mark.nats
def test_untraced_service_copies_the_callers_trace_context_onto_events(
        nats_url: str, tmp_path: Path) -> None:
    traceparent, _, _ = new_traceparent()
    # OTEL_PYTHON_TRACER_PROVIDER would install a provider on first use: keep OTEL_* out.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", _UNTRACED_SCRIPT, nats_url, str(tmp_path), traceparent,
         "vendor=abc"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    headers = json.loads(done.stdout.strip().splitlines()[-1])
    assert headers["traceparent"] == traceparent
    assert headers["tracestate"] == "vendor=abc"


# -- metrics --------------------------------------------------------------------------


def data_points(reader: InMemoryMetricReader, name: str) -> dict[tuple[str, str], Any]:
    """The cumulative points of one metric, keyed by (subject, outcome)."""
    data = reader.get_metrics_data()
    points: dict[tuple[str, str], Any] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        attributes = dict(point.attributes or {})
                        points[(str(attributes["subject"]), str(attributes["outcome"]))] = point
    return points


def point_count(points: dict[tuple[str, str], Any], key: tuple[str, str], name: str) -> int:
    """A counter's value or a histogram's count at ``key``; zero when nothing was recorded."""
    point = points.get(key)
    return 0 if point is None else int(getattr(point, name))


@pytest.mark.nats
async def test_command_metrics_record_subject_and_outcome(
        metric_reader: InMemoryMetricReader, instance: Instance, nc: Client) -> None:
    ok, refused = ("run.create", "ok"), ("run.create", "validation_failed")
    counts_before = data_points(metric_reader, "runlog.commands")
    durations_before = data_points(metric_reader, "runlog.command.duration")

    assert (await send(nc, "run.create", {"run_id": "metered", "name": "metered"}))["ok"]
    assert not (await send(nc, "run.create", {}))["ok"]

    counts = data_points(metric_reader, "runlog.commands")
    durations = data_points(metric_reader, "runlog.command.duration")
    for key in (ok, refused):
        assert point_count(counts, key, "value") == point_count(counts_before, key, "value") + 1
        assert (point_count(durations, key, "count")
                == point_count(durations_before, key, "count") + 1)
        assert durations[key].sum > 0


# -- configure_telemetry from an explicit environment ---------------------------------


@dataclass
class Installed:
    """What configure_telemetry tried to install globally, and what its console exporters wrote."""

    tracer_providers: list[TracerProvider] = field(default_factory=list)
    meter_providers: list[MeterProvider] = field(default_factory=list)
    console: io.StringIO = field(default_factory=io.StringIO)
    consoles_made: int = 0
    console_outs: list[object] = field(default_factory=list)
    """Where configure_telemetry asked each console exporter to write."""


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Installed]:
    """Captures the providers instead of installing them, so nothing global changes."""
    seen = Installed()

    def span_console(out: object = None) -> ConsoleSpanExporter:
        seen.consoles_made += 1
        seen.console_outs.append(out)
        return ConsoleSpanExporter(out=seen.console)

    def metric_console(out: object = None) -> ConsoleMetricExporter:
        seen.consoles_made += 1
        seen.console_outs.append(out)
        return ConsoleMetricExporter(out=seen.console)

    monkeypatch.setattr(trace, "set_tracer_provider", seen.tracer_providers.append)
    monkeypatch.setattr(metrics, "set_meter_provider", seen.meter_providers.append)
    monkeypatch.setattr(telemetry, "ConsoleSpanExporter", span_console)
    monkeypatch.setattr(telemetry, "ConsoleMetricExporter", metric_console)
    yield seen
    for tracer_provider in seen.tracer_providers:
        tracer_provider.shutdown()
    for meter_provider in seen.meter_providers:
        meter_provider.shutdown()


def test_sdk_disabled_installs_nothing(installed: Installed) -> None:
    env = {"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "console",
           "OTEL_METRICS_EXPORTER": "console"}
    assert configure_telemetry(env=env) is None
    assert installed.tracer_providers == []
    assert installed.meter_providers == []
    assert installed.consoles_made == 0


def test_empty_environment_installs_no_tracer_provider(installed: Installed) -> None:
    # Nothing would be exported, so the command path must stay on its span-free fast path.
    assert configure_telemetry(env={}) is None
    assert installed.tracer_providers == []
    assert installed.meter_providers == []
    assert installed.consoles_made == 0


def test_console_exporters_write_spans_and_metrics(installed: Installed) -> None:
    env = {"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "console",
           "OTEL_SERVICE_NAME": "runlog-probe"}
    provider = configure_telemetry(env=env)
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "runlog-probe"
    with provider.get_tracer("probe").start_as_current_span("console-probe"):
        pass
    assert provider.force_flush()
    [meter_provider] = installed.meter_providers
    meter_provider.get_meter("probe").create_counter("probe.count").add(1)
    assert meter_provider.force_flush()
    assert '"name": "console-probe"' in installed.console.getvalue()
    assert '"name": "probe.count"' in installed.console.getvalue()
    # stdout is where verbs print their output: the console exporters never write there.
    assert installed.console_outs == [sys.stderr, sys.stderr]


def test_span_processor_replaces_the_environment_exporter(installed: Installed) -> None:
    exporter = InMemorySpanExporter()
    provider = configure_telemetry(span_processor=SimpleSpanProcessor(exporter),
                                   env={"OTEL_TRACES_EXPORTER": "console"})
    assert provider is not None
    with provider.get_tracer("probe").start_as_current_span("memory-probe"):
        pass
    assert [s.name for s in exporter.get_finished_spans()] == ["memory-probe"]
    assert installed.consoles_made == 0


def test_unsupported_exporter_is_refused_before_installing(installed: Installed) -> None:
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER='zipkin'"):
        configure_telemetry(env={"OTEL_TRACES_EXPORTER": "zipkin"})
    assert installed.tracer_providers == []


# -- propagation helpers --------------------------------------------------------------


def test_trace_context_round_trips_through_headers() -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    traceparent, trace_id, caller_span_id = new_traceparent()
    parent = extract_context({"traceparent": traceparent})
    with provider.get_tracer("probe").start_as_current_span("hop", context=parent) as span:
        carried = inject_context()
    assert trace_id_of(carried["traceparent"]) == trace_id
    assert carried["traceparent"].split("-")[2] == hex_id(span.get_span_context().span_id, 16)
    assert carried["traceparent"].split("-")[2] != caller_span_id


def test_headers_without_traceparent_carry_no_context() -> None:
    assert extract_context(None) is None
    assert extract_context({"Nats-Msg-Id": "x"}) is None
    assert inject_context() == {}


@pytest.mark.parametrize("value", [None, "", "00-short-0000000000000001-01", "garbage"])
def test_trace_id_of_rejects_malformed_values(value: str | None) -> None:
    assert trace_id_of(value) is None

