"""The operator's verbs as a user runs them against a live `runlog up`: send, nouns, tail,
status, health, trace and report."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from projections import ReadModelDb, query
from services.cli import main
from tests.e2e.cli import runlog, runlog_env, start_up, stop_up, wait_for_instance

pytestmark = [pytest.mark.nats, pytest.mark.slow]

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    data_dir = tmp_path_factory.mktemp("served")
    up = start_up(data_dir)
    try:
        wait_for_instance(data_dir, up)
        yield data_dir
    finally:
        stop_up(up)


def nats_url(data_dir: Path) -> str:
    return str(json.loads((data_dir / "instance.json").read_text())["nats_url"])


def send(data_dir: Path, subject: str, body: dict[str, Any],
         headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A command sent straight over NATS (the verbs under test run as subprocesses)."""
    async def request() -> dict[str, Any]:
        nc = await nats.connect(nats_url(data_dir))
        try:
            msg = await nc.request(f"runlog.cmd.{subject}", json.dumps(body).encode(),
                                   headers=headers, timeout=10)
        finally:
            await nc.close()
        reply: dict[str, Any] = json.loads(msg.data)
        return reply

    return asyncio.run(request())


def wait_for(data_dir: Path, reply: dict[str, Any]) -> None:
    """Read your write: until every projection has applied the reply's sequence."""
    query("SELECT 1", db_path=data_dir / "runlog.duckdb", nats_url=nats_url(data_dir),
          wait_seq=int(reply["seq"]))


def sql_json(data_dir: Path, sql: str) -> list[dict[str, Any]]:
    done = runlog(data_dir, "sql", sql, "-o", "json")
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def cli(data_dir: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """A verb run in this process, for the checks beside the one under test."""
    code = main([*args, "--data-dir", str(data_dir)])
    return code, capsys.readouterr().out


def test_send_reads_a_body_from_stdin_and_from_a_file(served: Path, tmp_path: Path) -> None:
    piped = subprocess.run([sys.executable, "-m", "services.cli", "send", "run.create", "-"],
                           input='{"run_id": "from-stdin", "name": "piped"}', text=True,
                           capture_output=True, env=runlog_env(served), check=False)
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["events"] == ["RunCreated"]
    body = tmp_path / "body.json"
    body.write_text('{"run_id": "from-file", "name": "filed"}')
    filed = runlog(served, "send", "run.create", f"@{body}")
    assert filed.returncode == 0, filed.stderr
    assert json.loads(filed.stdout)["id"] == "from-file"


def test_a_2_mb_body_is_refused_in_one_line(served: Path, tmp_path: Path) -> None:
    body = tmp_path / "big.json"
    body.write_text(json.dumps({"run_id": "big", "name": "x" * (2 * 1024 * 1024)}))
    refused = runlog(served, "send", "run.create", f"@{body}")
    assert refused.returncode == 1
    assert refused.stderr.startswith("runlog: payload_too_large")
    assert len(refused.stderr.strip().splitlines()) == 1


def test_send_lists_every_command_with_its_fields(served: Path) -> None:
    listed = runlog(served, "send", "--list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    commands = {c["subject"]: c for c in json.loads(listed.stdout)["commands"]}
    submit = {f["name"]: f for f in commands["runlog.cmd.task.submit"]["fields"]}
    assert submit["run_id"]["required"] is True
    assert submit["priority"] == {"name": "priority", "type": "integer", "required": False,
                                  "default": "5", "rules": ">= 0, <= 9"}
    table = runlog(served, "send", "--list", "run.create")
    assert "runlog.cmd.run.create" in table.stdout
    assert "budget" in table.stdout


def test_noun_verbs_list_and_show_the_read_models(served: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    send(served, "run.create", {"run_id": "noun-run", "name": "nouns"})
    send(served, "run.start", {"run_id": "noun-run"})
    wait_for(served, send(served, "task.submit", {"task_id": "noun-task", "run_id": "noun-run",
                                                  "kind": "code"}))
    runs = json.loads(runlog(served, "run", "list", "--state", "running", "-o", "json").stdout)
    assert "noun-run" in {r["run_id"] for r in runs}
    shown = json.loads(runlog(served, "run", "show", "noun-run", "-o", "json").stdout)
    assert shown["run"]["state"] == "running"
    assert [t["task_id"] for t in shown["tasks"]] == ["noun-task"]
    assert [t["event_type"] for t in shown["transitions"]] == [
        "RunCreated", "RunStarted", "TaskSubmitted"]
    _, tasks = cli(served, capsys, "task", "list", "--run-id", "noun-run", "-o", "csv")
    assert tasks.splitlines()[1].startswith("noun-task,noun-run,code,queued")
    for noun in ("worker", "breaker", "budget"):
        assert cli(served, capsys, noun, "list")[0] == 0
    send(served, "budget.create", {"budget_id": "noun-budget", "name": "b", "max_cost_usd": 1})
    send(served, "run.create", {"run_id": "noun-spender", "name": "s", "budget_id": "noun-budget"})
    send(served, "run.start", {"run_id": "noun-spender"})
    wait_for(served, send(served, "usage.record", {"run_id": "noun-spender", "model": "gpt-4o",
                                                   "tokens_in": 1000, "tokens_out": 1000}))
    budget = json.loads(runlog(served, "budget", "show", "noun-budget", "-o", "json").stdout)
    assert [(f["period"], f["exhausted_by"]) for f in budget["forecast"]] == [("total", "cost")]
    assert cli(served, capsys, "task", "show", "no-such-task")[0] == 1


def test_tail_reads_the_log_from_a_sequence_and_follows_it(served: Path) -> None:
    first = send(served, "run.create", {"run_id": "tailed", "name": "t"})
    send(served, "run.start", {"run_id": "tailed"})
    history = runlog(served, "tail", "--from", str(first["seq"]), "--aggregate", "run",
                     "--id", "tailed", "--no-follow", "-o", "jsonl")
    assert history.returncode == 0, history.stderr
    events = [json.loads(line) for line in history.stdout.splitlines()]
    assert [(e["type"], e["to_state"]) for e in events] == [
        ("RunCreated", "pending"), ("RunStarted", "running")]
    assert events[0]["seq"] == first["seq"]
    follower = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "tail", "--type", "RunCancelled", "--count", "1",
         "-o", "jsonl"], env=runlog_env(served), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        # Sent until the follower (which starts from now) has seen one.
        for attempt in range(60):
            send(served, "run.create", {"run_id": f"cancel-{attempt}", "name": "c"})
            send(served, "run.cancel", {"run_id": f"cancel-{attempt}"})
            try:
                out, err = follower.communicate(timeout=1)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            raise AssertionError("tail never printed the cancellation")
    finally:
        follower.kill()
    assert follower.returncode == 0, err
    assert json.loads(out)["type"] == "RunCancelled"


def test_status_once_prints_every_section(served: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    done = runlog(served, "status", "--once", "-o", "json")
    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    for section in ("runs", "queues", "running", "workers", "breakers", "budgets"):
        assert isinstance(view[section], list)
    assert view["problem"] is None
    assert view["projector_lag"] >= 0
    assert "Runs by state" in cli(served, capsys, "status", "--once")[1]


def test_health_says_ok_then_degraded_by_an_open_breaker(served: Path) -> None:
    ok = runlog(served, "health", "-o", "json")
    assert ok.returncode == 0, ok.stdout
    assert json.loads(ok.stdout)["status"] == "ok"
    send(served, "breaker.configure", {"breaker_id": "acme", "failure_threshold": 1})
    opened = send(served, "breaker.record", {"breaker_id": "acme", "outcome": "failure",
                                             "error_class": "server_error"})
    wait_for(served, opened)
    degraded = runlog(served, "health", "-o", "json")
    assert degraded.returncode == 1, degraded.stdout
    checks = {c["name"]: c for c in json.loads(degraded.stdout)["checks"]}
    assert checks["breakers"]["status"] == "degraded"
    assert "acme open" in checks["breakers"]["detail"]
    wait_for(served, send(served, "breaker.reset", {"breaker_id": "acme"}))
    assert runlog(served, "health").returncode == 0


def test_trace_lists_the_events_of_one_trace(served: Path) -> None:
    created = send(served, "run.create", {"run_id": "traced", "name": "t"},
                   headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"})
    wait_for(served, created)
    done = runlog(served, "trace", TRACE_ID, "--events", "-o", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [(r["aggregate_id"], r["event_type"]) for r in rows] == [("traced", "RunCreated")]
    assert rows[0]["fields"]["name"] == "t"


def test_report_writes_one_html_file_with_its_charts_as_png(served: Path, tmp_path: Path
                                                            ) -> None:
    send(served, "run.create", {"run_id": "priced", "name": "p"})
    send(served, "run.start", {"run_id": "priced"})
    wait_for(served, send(served, "usage.record", {"run_id": "priced", "model": "gpt-5",
                                                   "tokens_in": 1000, "tokens_out": 200}))
    target = tmp_path / "out" / "daily.html"
    done = runlog(served, "report", "daily", "-o", str(target))
    assert done.returncode == 0, done.stderr
    page = target.read_text()
    assert page.count("data:image/png;base64,") >= 2
    assert "gpt-5" in page
    assert "Savings from the result cache" in page  # measured by cache_entries
    assert "No savings figure from `routing_decisions`" in page  # and says what is not
    pngs = sorted(target.parent.glob("daily-*.png"))
    assert {p.name for p in pngs} >= {"daily-cost_by_model.png", "daily-tokens.png"}
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in pngs)
    assert "Cost by model" in done.stdout


def test_health_and_its_view_say_down_once_the_service_stops(tmp_path: Path) -> None:
    up = start_up(tmp_path)
    try:
        wait_for_instance(tmp_path, up)
        assert main(["health", "--data-dir", str(tmp_path)]) == 0
    finally:
        stop_up(up)
    down = runlog(tmp_path, "health", "-o", "json")
    assert down.returncode == 2, down.stdout
    assert json.loads(down.stdout)["status"] == "down"
    view = sql_json(tmp_path, "SELECT status, detail FROM health WHERE component = 'service'")
    assert view[0]["status"] == "down"
    assert view[0]["detail"].startswith("down: stopped at")


def test_replay_bounds_outside_the_log_are_one_line_and_a_time_after_it_says_so(
        served: Path) -> None:
    from datetime import UTC, datetime, timedelta

    made = runlog(served, "send", "run.create", '{"name": "bounded"}')
    assert made.returncode == 0, made.stderr
    last = json.loads(made.stdout)["seq"]
    past = runlog(served, "replay", "--until-seq", str(last + 10_000), "--quiet",
                  timeout_s=60)
    assert past.returncode == 1
    assert "is past the last event of the log (seq " in past.stderr
    assert len(past.stderr.strip().splitlines()) == 1, past.stderr
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    ahead = runlog(served, "replay", "--until", future, "--quiet", timeout_s=60)
    assert ahead.returncode == 1
    assert "is in the future" in ahead.stderr
    assert len(ahead.stderr.strip().splitlines()) == 1, ahead.stderr
    now = runlog(served, "replay", "--until", datetime.now(UTC).isoformat(), "--quiet",
                 timeout_s=60)
    assert now.returncode == 0, now.stderr
    assert "this is the state as of that event" in now.stdout


def test_a_server_named_on_purpose_answers_even_beside_another_read_model_file(
        served: Path, tmp_path: Path) -> None:
    wait_for(served, send(served, "run.create", {"run_id": "named-server", "name": "n"}))
    elsewhere = tmp_path / "elsewhere"
    ReadModelDb.open_writer(elsewhere / "runlog.duckdb").close()  # a stale, empty file
    sql = "SELECT count(*) AS n FROM runs WHERE run_id = 'named-server'"
    for named in (("--server", nats_url(served)), ()):
        env = {} if named else {"RUNLOG_NATS_URL": nats_url(served)}
        done = runlog(elsewhere, *named, "sql", sql, "-o", "json", env=env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == [{"n": 1}]  # the service's rows, not the file's
        listed = runlog(elsewhere, *named, "run", "list", "-o", "json", env=env)
        assert listed.returncode == 0, listed.stderr
        assert "named-server" in listed.stdout
    local = runlog(elsewhere, "sql", sql, "-o", "json")  # nothing named: the local file
    assert (local.returncode, json.loads(local.stdout)) == (0, [{"n": 0}])
