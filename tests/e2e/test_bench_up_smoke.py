"""``tests/bench/bench_up.py --quick`` reports every figure (no timing held)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.bench.bench_up import hottest

pytestmark = [pytest.mark.nats, pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_up.py"
MEASURED = {
    "commands/s, runlog up vs raw responder", "CPU µs/command, runlog up vs raw responder",
    "p50 latency, runlog up vs raw responder", "p99 latency, runlog up vs raw responder",
    "commands/s, runlog up vs ES+SQLite", "CPU µs/command, runlog up vs ES+SQLite",
    "freshness p50 at 1,000/s, no queries",
    "freshness p99 at 1,000/s, no queries",
    "freshness p50 at 1,000/s, read back", "freshness p99 at 1,000/s, read back",
    "freshness p50 at 1,000/s, polled", "freshness p99 at 1,000/s, polled",
    "replay events/s vs ordered consumer + json.loads", "peak RSS replaying 5,000 events"}
WITHOUT_POSTGRES = {"commands/s, runlog up vs ES+PostgreSQL",
                    "CPU µs/command, runlog up vs ES+PostgreSQL"}


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """One quick run (PostgreSQL off: the suite never depends on the local server)."""
    out = tmp_path_factory.mktemp("bench") / "figures.json"
    done = subprocess.run([sys.executable, str(BENCH), "--quick", "--postgres", "off",
                           "--json", str(out)], capture_output=True, text=True, timeout=240,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures, done.stdout


def test_every_figure_is_reported_with_its_baseline_ratio_and_mark(
        measured: tuple[dict[str, Any], str]) -> None:
    figures, printed = measured
    lines = {line["name"]: line for line in figures["figures"]}
    assert set(lines) == MEASURED | WITHOUT_POSTGRES
    for name in MEASURED:
        line = lines[name]
        assert line["ours"] > 0, line
        assert line["baseline"] > 0, line
        assert line["ratio"] > 0, line
        assert line["mark"] in {"pass", "SHORT", "—"}, line
        assert name in printed
    assert all(lines[name]["mark"] == "skipped" for name in WITHOUT_POSTGRES)


def test_the_measured_work_was_done_right(measured: tuple[dict[str, Any], str]) -> None:
    figures, _ = measured
    commands, fresh, replay = (figures[key] for key in ("commands", "freshness", "replay"))
    assert commands["runlog up"]["failures"] == 0
    assert commands["raw responder"]["failures"] == 0
    assert commands["runlog up"]["commands"] == 8 * 2 * 7
    # Every reply of the paced load got its freshness, and no poll was refused.
    polled, probed = fresh["position poll"], fresh["read your writes"]
    assert polled["fresh_samples"] == polled["commands"]
    assert polled["fresh_errors"] == 0
    # The read side counted the freshness of every event of each paced round (the
    # commands' events and nothing before them).
    for paced in fresh.values():
        assert paced["service_fresh_events"] == paced["commands"]
    # Every 10th reply's row was read back, and each answer held it.
    assert probed["probe_samples"] == probed["commands"] // 10
    assert probed["probe_errors"] == 0
    # runlog replay rebuilt exactly the events the bare reader read.
    assert replay["runlog replay"]["events"] == replay["ordered consumer"]["events"]


def test_hottest_functions_from_collapsed_stacks(tmp_path: Path) -> None:
    profile = tmp_path / "stacks.txt"
    profile.write_text("process 1;main (a.py:1);decode (b.py:7) 3\n"
                       "process 1;main (a.py:1);decode (b.py:9) 1\n"
                       "process 1;main (a.py:2);apply (c.py:3) 4\n")
    own, inclusive, areas = hottest(profile)
    assert dict(own) == {"apply (c.py)": 0.5, "decode (b.py)": 0.5}
    assert inclusive[0] == ("main (a.py)", 1.0)
    assert dict(areas) == {"c": 0.5, "b": 0.5}
