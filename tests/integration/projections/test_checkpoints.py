"""Each batch moves the checkpoints of the projections that applied it, and only theirs."""

from __future__ import annotations

from pathlib import Path

from projections.applier import BatchApplier
from projections.database import ReadModelDb
from projections.models import default_projections
from services.store import RecordedEvent
from tests.support.read_side import EventLog


def _records(log: EventLog) -> list[RecordedEvent]:
    return [RecordedEvent(seq, f"runlog.evt.{e.aggregate}.{e.aggregate_id}", e.to_json(), {})
            for seq, e in enumerate(log.envelopes, start=1)]


def _checkpoints(db: ReadModelDb) -> dict[str, tuple[int, int]]:
    rows = db.con.execute("SELECT projection, last_seq, stream_head FROM checkpoints").fetchall()
    return {name: (seq, head) for name, seq, head in rows}


def test_every_projection_moves_to_the_batch_end_and_the_stream_head(
        tmp_path: Path, history: EventLog) -> None:
    db = ReadModelDb.open_writer(tmp_path / "rm.duckdb")
    records = _records(history)
    BatchApplier(db).apply(records, stream_head=len(records) + 5)
    names = {p.name for p in default_projections()}
    assert _checkpoints(db) == {name: (len(records), len(records) + 5) for name in names}
    db.close()


def test_an_applier_of_some_projections_leaves_the_others_checkpoints_alone(
        tmp_path: Path, history: EventLog) -> None:
    db = ReadModelDb.open_writer(tmp_path / "rm.duckdb")  # every default projection at 0
    records = _records(history)
    runs = [p for p in default_projections() if p.name == "runs"]
    BatchApplier(db, runs).apply(records, stream_head=len(records))
    moved = {name: at for name, at in _checkpoints(db).items() if at != (0, 0)}
    assert moved == {"runs": (len(records), len(records))}
    db.close()
