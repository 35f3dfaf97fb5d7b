"""Fixtures of the read-side tests: a read-model file per test and realistic histories."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.support.read_side import EventLog, run_lifecycle, setup_fleet


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where this test's live read models live."""
    return tmp_path / "runlog.duckdb"


@pytest.fixture
def sql_prefix() -> str:
    """A subject prefix of its own for the SQL responder (the NATS server is shared)."""
    return f"t{uuid.uuid4().hex[:10]}.sql"


@pytest.fixture
def history() -> EventLog:
    """A model, a worker and three whole runs (two succeeded, one failed)."""
    log = EventLog()
    setup_fleet(log)
    run_lifecycle(log, "r1", tasks=2, usage_per_task=2)
    run_lifecycle(log, "r2", tasks=3, usage_per_task=1)
    run_lifecycle(log, "r3", tasks=1, usage_per_task=1, end="failed")
    return log
