"""`runlog sql` as a user runs it: every row of a big export; a local query never blocks `up`."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from projections import ReadModelDb
from projections.models import default_projections
from tests.e2e.cli import instance_info, runlog, runlog_env, start_up, wait_for_instance

pytestmark = [pytest.mark.nats, pytest.mark.slow]

# More than 100,000 rows: the product of every checkpoint row (one per projection) and 10,000.
EXPORT = ("SELECT n, c.projection, c.last_seq FROM checkpoints c, range(10000) r(n) "
          "ORDER BY c.projection, n")


def exported(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`runlog sql EXPORT` with these flags."""
    return runlog(data_dir, "sql", EXPORT, *args, "--timeout", "60")


def check_export(result: subprocess.CompletedProcess[str], projections: int) -> None:
    """Every row arrived, exactly once, with nothing said on stderr."""
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["n", "projection", "last_seq"]
    assert len(rows) - 1 == projections * 10_000 > 100_000
    assert len({(row[0], row[1]) for row in rows[1:]}) == len(rows) - 1


def stop(up: subprocess.Popen[str]) -> None:
    up.send_signal(signal.SIGINT)
    assert up.wait(timeout=30) == 0, up.stderr.read()  # type: ignore[union-attr]


def test_a_complete_csv_export_while_up_runs_and_from_the_file(tmp_path: Path) -> None:
    projections = len(default_projections())  # one checkpoint row each
    up = start_up(tmp_path)
    try:
        wait_for_instance(tmp_path, up)
        check_export(exported(tmp_path, "-o", "csv"), projections)  # streamed by the service
        cut = exported(tmp_path, "-o", "csv", "--limit", "10")  # asked for: said, exit 0
        assert (cut.returncode, len(cut.stdout.splitlines())) == (0, 11)
        assert "limit reached: more rows exist than the 10 printed" in cut.stderr
        table = exported(tmp_path)  # a table stops at 1000 rows unasked: said, exit 1
        assert table.returncode == 1
        assert "limit reached" in table.stderr
        assert "-o csv|json|jsonl for every row" in table.stderr
        stop(up)
    finally:
        up.kill()
        up.wait()
    check_export(exported(tmp_path, "-o", "csv"), projections)  # read from the file itself


def holds(pid: int, path: Path) -> bool:
    """Whether a process has ``path`` open."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fd) == str(path) for fd in fds.iterdir())
    except OSError:
        return False


def test_a_local_query_gives_the_file_up_to_a_starting_up(tmp_path: Path) -> None:
    ReadModelDb.open_writer(tmp_path / "runlog.duckdb").close()  # as a stopped `up` leaves it
    reader = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "sql", "SELECT sleep_ms(50000)", "--timeout", "55"],
        env=runlog_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = (tmp_path / "runlog.duckdb").resolve()
    try:
        while not holds(reader.pid, db):
            assert reader.poll() is None, reader.stderr.read()  # type: ignore[union-attr]
        up = start_up(tmp_path)
        try:
            wait_for_instance(tmp_path, up)  # it did not wait 50 s for the reader, nor fail
            _, err = reader.communicate(timeout=30)
            assert reader.returncode == 1
            assert err.startswith("runlog: query interrupted: runlog up (pid ")
            assert "is starting and needs runlog.duckdb; run the query again" in err
            assert len(err.strip().splitlines()) == 1
            again = runlog(tmp_path, "sql", "SELECT 42 AS answer", "-o", "csv")
            assert again.stdout == "answer\n42\n", again.stderr
            stop(up)
        finally:
            up.kill()
            up.wait()
    finally:
        reader.kill()
        reader.wait()


def test_a_slow_query_served_by_up_is_interrupted_when_up_stops(tmp_path: Path) -> None:
    longer = {"RUNLOG_SQL_MAX_TIMEOUT_S": "600"}
    up = start_up(tmp_path, env=longer)
    try:
        wait_for_instance(tmp_path, up)
        slow = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "sql", "SELECT sleep_ms(300000)",
             "--timeout", "300"], env=runlog_env(tmp_path, longer), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        try:
            deadline, seen = time.monotonic() + 60, 0
            # up's /metrics: a query runs. Seen in 4 scrapes in a row (each status line is
            # new), so the short queries of a scrape itself cannot pass for the slow one.
            while seen < 4:
                assert slow.poll() is None, slow.stderr.read()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the query never ran in runlog up"
                seen = seen + 1 if sql_queries(tmp_path, "running") >= 1 else 0
                time.sleep(0.6)
            up.send_signal(signal.SIGTERM)
            assert up.wait(timeout=30) == 0  # not 300 s: the query was interrupted
            _, err = slow.communicate(timeout=30)
        finally:
            slow.kill()
            slow.wait()
        assert slow.returncode == 1
        assert err.strip() == "runlog: query interrupted: the service is stopping", err
        assert "Traceback" not in up.stderr.read()  # type: ignore[union-attr]
    finally:
        up.kill()
        up.wait()


def sql_queries(data_dir: Path, state: str) -> float:
    """``runlog_sql_queries{state=...}`` from the running up's /metrics."""
    url = f"{instance_info(data_dir)['http_url']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("runlog_sql_queries") and sample.labels.get(
                    "state") == state:
                return float(sample.value)
    return 0.0
