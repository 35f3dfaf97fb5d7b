"""One trace, client to policy, exported over OTLP to a real receiver; trace ids without one.

``runlog up`` exports to the receiver. A ``runlog send`` that exports too shows its CLIENT
span with the service's span under it. The run cancelled by a ``runlog send`` that exports
nothing still has one trace: the command, its events projected, the run-end policy's
reaction and the cancel it sent, whose event is projected in turn.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.cli import runlog
from tests.e2e.conftest import otlp_env
from tests.e2e.served import Served
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan

pytestmark = [pytest.mark.nats, pytest.mark.slow]


def named(spans: list[ReceivedSpan], name: str, trace_id: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.name == name and s.trace_id == trace_id]


def test_a_run_cancelled_by_runlog_send_is_one_trace_through_the_policy(
        served: Served, otlp: OtlpReceiver) -> None:
    trace_id = served.trace_ids["RunCancelled"]

    def complete(spans: list[ReceivedSpan]) -> bool:
        return len(named(spans, "runlog.projector.apply", trace_id)) >= 2

    spans = [s for s in otlp.wait_for(complete) if s.trace_id == trace_id]
    by_name = {s.name: s for s in spans}
    command = by_name["runlog.cmd.run.cancel process"]
    assert (command.kind, command.service) == ("SERVER", "runlog")
    # Its parent is the client span of `runlog send`, which exported nothing itself.
    assert command.parent_span_id not in {s.span_id for s in spans}
    policy = by_name["runlog.policy run-end"]
    assert policy.kind == "CONSUMER"
    applied = named(spans, "runlog.projector.apply", trace_id)
    # The run's event (written by the command) and the task's cancel (written by the
    # policy's command) were each projected inside this trace.
    assert {a.parent_span_id for a in applied} == {command.span_id, policy.span_id}
    assert {a.attributes["runlog.projector"] for a in applied} == {"read_models"}
    assert policy.parent_span_id == command.span_id
    assert {"append"} <= {s.name for s in spans if s.parent_span_id == command.span_id}


def test_runlog_send_exports_its_client_span_with_the_command_under_it(
        served: Served, otlp: OtlpReceiver) -> None:
    done = runlog(served.data_dir, "send", "run.create",
                  json.dumps({"run_id": "client-traced", "name": "with a client span"}),
                  env=otlp_env(otlp, "runlog-cli"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"]  # stdout holds the reply alone

    def has_client(spans: list[ReceivedSpan]) -> bool:
        return any(s.name == "runlog.cmd.run.create request" for s in spans)

    spans = otlp.wait_for(has_client)
    [client] = [s for s in spans if s.name == "runlog.cmd.run.create request"]
    assert (client.kind, client.service) == ("CLIENT", "runlog-cli")
    assert client.attributes["messaging.destination.name"] == "runlog.cmd.run.create"
    server = otlp.wait_for(lambda got: any(
        s.parent_span_id == client.span_id for s in got))
    [command] = [s for s in server if s.parent_span_id == client.span_id]
    assert (command.name, command.trace_id) == ("runlog.cmd.run.create process",
                                                client.trace_id)


def test_the_console_exporter_keeps_stdout_for_the_reply(served: Served) -> None:
    done = runlog(served.data_dir, "send", "run.create",
                  json.dumps({"run_id": "console-traced", "name": "spans on stderr"}),
                  env={"OTEL_TRACES_EXPORTER": "console"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["events"] == ["RunCreated"]
    assert '"name": "runlog.cmd.run.create request"' in done.stderr
