"""kill -9 in the middle of a batch loses nothing and counts nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from projections import build_read_models
from services.store import JetStreamEventStore
from tests.support.read_side import (
    EventLog,
    dump_tables,
    publish_fast,
    run_lifecycle,
    serialised,
    setup_fleet,
)

pytestmark = [pytest.mark.nats, pytest.mark.slow]

TABLES = ["runs", "tasks", "workers", "usage", "models", "model_prices", "transitions",
          "checkpoints", "projection_errors"]
ROOT = Path(__file__).resolve().parents[3]


def start_projector(nats_url: str, store: JetStreamEventStore, db: Path, until: int
                    ) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.projector_proc", "--nats", nats_url,
         "--stream", store.stream, "--prefix", store.subject_prefix, "--db", str(db),
         "--until", str(until), "--batch", "150"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )


def kill_inside_a_batch(process: subprocess.Popen[str], nth: int, timeout_s: float = 60.0
                        ) -> int:
    """Reads the child's BEGIN lines and kills it -9 right after the nth one; returns its seq."""
    deadline = time.monotonic() + timeout_s
    seen = 0
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("BEGIN"):
            seen += 1
            if seen == nth:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
                return int(line.split()[1])
        assert time.monotonic() < deadline, "the projector never got that far"
    raise AssertionError(f"projector ended before batch {nth}: rc={process.wait()}")


async def test_kill_9_mid_batch_then_restart_equals_a_clean_rebuild(
    nats_url: str, store: JetStreamEventStore, tmp_path: Path
) -> None:
    log = EventLog()
    setup_fleet(log)
    for index in range(60):
        run_lifecycle(log, f"r{index}", tasks=4, usage_per_task=2)
    await publish_fast(store, serialised(store, log.envelopes))
    last = await store.last_seq()
    live = tmp_path / "live.duckdb"
    killed_at = [kill_inside_a_batch(start_projector(nats_url, store, live, last), nth)
                 for nth in (2, 3, 4)]
    assert killed_at[0] < killed_at[-1]  # each restart went on from its checkpoint
    final = start_projector(nats_url, store, live, last)
    out, _ = final.communicate(timeout=120)
    assert final.returncode == 0, out
    clean = await build_read_models(store, tmp_path / "clean.duckdb")
    assert clean.position == last
    assert dump_tables(live, TABLES) == dump_tables(clean.path, TABLES)
