"""The ``health`` view says down when no runlog up projects into the file, whatever lag it shows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from projections import ReadModelDb
from projections.liveness import beat, mark_stopped


def service_row(db: ReadModelDb) -> tuple[str, str]:
    row = db.con.execute("SELECT status, detail FROM health WHERE component = 'service'"
                         ).fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


def projection_statuses(db: ReadModelDb) -> set[str]:
    rows = db.con.execute("SELECT status FROM health WHERE component = 'projection'").fetchall()
    return {str(r[0]) for r in rows}


def test_a_beating_writer_is_up_and_a_stopped_one_down_at_once(tmp_path: Path) -> None:
    db = ReadModelDb.open_writer(tmp_path / "r.duckdb")
    db.con.execute("INSERT INTO checkpoints VALUES ('runs', 5, 5, now())")
    assert service_row(db)[0] == "down"
    assert projection_statuses(db) == {"stale"}
    beat(db, datetime.now(UTC))
    status, detail = service_row(db)
    assert (status, detail.startswith("running (pid ")) == ("ok", True)
    assert projection_statuses(db) == {"ok"}
    mark_stopped(db)
    status, detail = service_row(db)
    assert (status, detail.startswith("down: stopped at ")) == ("down", True)
    assert projection_statuses(db) == {"stale"}
    db.close()


def test_a_writer_that_stopped_beating_is_down(tmp_path: Path) -> None:
    db = ReadModelDb.open_writer(tmp_path / "r.duckdb")
    beat(db, datetime.now(UTC), interval_s=5.0)
    # As a kill -9 leaves it: still "running", but its last beat is three intervals old.
    db.con.execute("UPDATE service_liveness SET beat_at = now() - INTERVAL 16 SECOND")
    status, detail = service_row(db)
    assert status == "down"
    assert "stopped without a word" in detail
    db.close()
