"""`runlog demo` as the README's quick start runs it, then `runlog sql` on what it left."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.cli import nats_children, runlog

pytestmark = [pytest.mark.nats, pytest.mark.slow]


def test_demo_drives_a_workload_and_reports_from_the_read_models(tmp_path: Path) -> None:
    demo = runlog(tmp_path, "demo", "--runs", "5", "--workers", "3", timeout_s=180)
    assert demo.returncode == 0, demo.stderr
    for section in ("Runs by state", "Cost by model", "Budget forecast", "Costliest runs",
                    "Latest transitions"):
        assert section in demo.stdout
    assert "stopped cleanly" in demo.stderr
    assert nats_children(tmp_path / "demo") == []
    runs = runlog(tmp_path / "demo", "sql", "SELECT state, count(*) AS n FROM runs "
                  "GROUP BY state ORDER BY state", "--format", "json")
    assert runs.returncode == 0, runs.stderr
    states = {row["state"]: row["n"] for row in json.loads(runs.stdout)}
    assert sum(states.values()) == 5
    assert states.get("cancelled") == 1
    assert set(states) <= {"succeeded", "failed", "cancelled"}


def test_sql_refuses_writes_in_one_line(tmp_path: Path) -> None:
    demo = runlog(tmp_path, "demo", "--runs", "2", "--workers", "1", timeout_s=180)
    assert demo.returncode == 0, demo.stderr
    refused = runlog(tmp_path / "demo", "sql", "DELETE FROM runs")
    assert refused.returncode == 1
    assert refused.stderr.startswith("runlog: ")
    assert len(refused.stderr.strip().splitlines()) == 1
