"""``runlog up``'s HTTP endpoint as an operator and Prometheus use it: probes, metrics, JSON."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.health import Status
from tests.e2e.cli import instance_info, runlog, start_up, wait_for_instance
from tests.e2e.served import Served, get, get_json

pytestmark = [pytest.mark.nats, pytest.mark.slow]

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of a Prometheus text exposition, by sample name."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def test_healthz_and_readyz_answer_the_shared_health_report(served: Served) -> None:
    status, report = get_json(f"{served.http_url}/healthz")
    assert status == 200
    assert report["status"] in (Status.OK, Status.DEGRADED)
    names = {check["name"] for check in report["checks"]}
    assert {"nats", "stream", "commands", "read_side", "projections", "workers", "breakers",
            "budgets"} <= names
    assert all(c["status"] != "down" for c in report["checks"]), report
    ready_status, ready = get_json(f"{served.http_url}/readyz")
    assert (ready_status, ready["exit_code"] < 2) == (200, True)


def test_metrics_are_prometheus_text_with_commands_latency_and_read_models(
        served: Served) -> None:
    status, headers, body = get(f"{served.http_url}/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    found = samples(body.decode())
    claims = [v for labels, v in found["runlog_commands_total"]
              if labels == {"subject": "task.claim", "outcome": "ok"}]
    assert claims
    assert claims[0] >= 1
    assert any(v >= 1 for _, v in found["runlog_command_duration_milliseconds_count"])
    assert found["runlog_append_duration_milliseconds_count"][0][1] >= 1
    assert found["runlog_projector_lag"]
    # The read side's process counts each event's time to SQL; the parent serves it.
    counted = [v for labels, v in found["runlog_projector_freshness_seconds_count"]
               if labels == {"projector": "read_models"}]
    assert counted
    assert counted[0] >= 1
    assert {labels["projection"] for labels, _ in found["runlog_projection_lag_events"]} >= {
        "runs", "tasks", "usage"}
    assert found["runlog_stream_last_seq"][0][1] > 100
    runs = {labels["state"]: v for labels, v in found["runlog_runs"]}
    assert runs["cancelled"] >= 1
    assert sum(runs.values()) >= 5  # the workload's three, the shared one and the traced one
    tasks = {labels["state"]: v for labels, v in found["runlog_tasks"]}
    assert tasks["succeeded"] >= 1
    assert tasks["cancelled"] >= 1
    families = {f.name for f in text_string_to_metric_families(body.decode())}
    assert {"runlog_queue_depth", "runlog_leases"} <= families
    assert any(labels["budget_id"] == "team" and 0 < v < 1
               for labels, v in found["runlog_budget_used_ratio"])
    assert {labels["breaker_id"] for labels, _ in found["runlog_breaker_open"]}
    assert found["runlog_usage_cost_usd"]
    assert found["runlog_health_status"][0][1] in (0.0, 1.0)
    assert found["runlog_read_models_up"] == [({}, 1.0)]


def test_dashboard_json_lists_runs_and_a_runs_timeline_with_trace_ids(served: Served) -> None:
    status, page = get_json(f"{served.http_url}/api/runs")
    assert status == 200
    assert {r["run_id"] for r in page["sections"]["runs"]} >= {"shared", served.traced_run}
    status, run = get_json(f"{served.http_url}/api/runs/{served.traced_run}")
    assert status == 200
    assert run["sections"]["run"][0]["state"] == "cancelled"
    timeline = run["sections"]["timeline"]
    assert [t["event_type"] for t in timeline] == [
        "RunCreated", "RunStarted", "TaskSubmitted", "RunCancelled", "TaskCancelled"]
    assert all(HEX32.match(t["trace_id"] or "") for t in timeline), timeline
    for page_name in ("overview", "workers", "breakers", "budgets", "cost", "tasks"):
        status, body = get_json(f"{served.http_url}/api/{page_name}")
        assert status == 200, (page_name, body)
        assert any(body["sections"].values()), page_name


def test_every_runlog_send_carries_a_trace_id_and_the_policy_keeps_its_triggers(
        served: Served) -> None:
    # The `runlog send` that cancelled the run exports nothing: the id is its client span's.
    ids = served.trace_ids
    assert HEX32.match(ids["RunCancelled"])
    assert ids["RunCreated"] != ids["RunCancelled"]
    # The run-end policy's cancel joins the trace of the command that ended the run.
    assert ids["TaskCancelled"] == ids["RunCancelled"]


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/api/runs/not%20an%20id", 400, "validation_failed"),
    ("/api/runs/nobody", 404, "not_found"),
    ("/api/tasks?state=bogus", 400, "validation_failed"),
])
def test_bad_dashboard_requests_get_a_coded_error(served: Served, path: str, status: int,
                                                   code: str) -> None:
    got, body = get_json(f"{served.http_url}{path}")
    assert (got, body["error"]["code"]) == (status, code)


def test_only_get_is_served(served: Served) -> None:
    request = urllib.request.Request(f"{served.http_url}/api/runs", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 405
    refused.value.close()


def test_the_page_and_its_assets_are_served_with_a_strict_policy(served: Served) -> None:
    status, headers, body = get(f"{served.http_url}/")
    assert status == 200
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert b'<script src="/static/dashboard.js"' in body
    assert get(f"{served.http_url}/static/dashboard.js")[0] == 200
    assert get(f"{served.http_url}/static/../settings.py")[0] == 404


def test_a_taken_port_is_a_one_line_error_and_off_serves_nothing(
        served: Served, tmp_path: Path) -> None:
    taken = served.http_url.removeprefix("http://")
    refused = runlog(tmp_path / "second", "up", env={"RUNLOG_HTTP_ADDR": taken}, timeout_s=60)
    assert refused.returncode == 1
    assert f"cannot serve HTTP on {taken}" in refused.stderr
    assert "Traceback" not in refused.stderr
    quiet = start_up(tmp_path / "quiet", env={"RUNLOG_HTTP_ADDR": "off"})
    try:
        wait_for_instance(tmp_path / "quiet", quiet)
        assert instance_info(tmp_path / "quiet")["http_url"] is None
    finally:
        quiet.terminate()
        quiet.communicate(timeout=30)
    assert quiet.returncode == 0


def test_a_malformed_address_is_refused_before_anything_starts(tmp_path: Path) -> None:
    done = runlog(tmp_path, "up", env={"RUNLOG_HTTP_ADDR": "localhost"}, timeout_s=60)
    assert done.returncode != 0
    assert "http_addr" in done.stderr.lower()
    assert json.dumps({}) == "{}"
