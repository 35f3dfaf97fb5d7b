"""Applies batches of stored events to the read models, one transaction (checkpoint included) each.

Exactly-once effect: each projection's checkpoint is written in the same DuckDB
transaction as the rows it describes, and events at or below it are skipped, so a
redelivered batch or a restart after ``kill -9`` counts nothing twice and loses nothing.

A poison event does not stall the log. Errors in Python (decoding, folding, type
checks) are pinned on their event while folding. If a batch still fails inside DuckDB,
the transaction is rolled back and the batch is bisected, each half committed with its
own checkpoint, until the one event that fails is found; that projection skips it (a
``projection_errors`` row) and every other projection applies it. Infrastructure
failures (I/O, a broken database) and strict mode halt instead. A batch that fails for
want of memory (the database's ``memory_limit``, shared with the queries it serves) is
rolled back whole and raised as ``DatabaseStrained``: the caller retries it later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import duckdb

from events.codec import CODEC, EventCodec
from services.store import RecordedEvent

from .columns import Col, ColType
from .database import ReadModelDb, is_memory_error
from .decode import DecodeError, Event, decode
from .errors import DatabaseStrained, ProjectionHalted
from .models import Batch, ErrorSink, Projection, RejectedEvent, default_projections
from .models.base import insert_rows, upsert_rows

__all__ = ["BatchApplier", "BatchResult"]

_HALTING = (
    duckdb.IOException, duckdb.OutOfMemoryException, duckdb.FatalException,
    duckdb.InternalException, duckdb.InterruptException, duckdb.TransactionException,
    MemoryError,
)
_CHECKPOINT_COLUMNS = (
    Col("projection", ColType.TEXT), Col("last_seq", ColType.BIGINT),
    Col("stream_head", ColType.BIGINT), Col("updated_at", ColType.TIME),
)
_ERROR_COLUMNS = (
    Col("projection", ColType.TEXT), Col("seq", ColType.BIGINT), Col("event_type", ColType.TEXT),
    Col("aggregate", ColType.TEXT), Col("aggregate_id", ColType.TEXT), Col("error", ColType.TEXT),
    Col("failed_at", ColType.TIME),
)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one ``apply`` call did."""

    events: int
    """Messages applied (past the checkpoint, before any cutoff)."""
    last_seq: int
    """The position every projection is at now."""
    rejected: int
    """Events some projection skipped."""
    stopped: bool = False
    """A time cutoff was reached inside this batch."""


@dataclass
class _Work:
    """A slice of a batch: its messages, their decoded events and the undecodable ones."""

    records: list[RecordedEvent]
    events: list[Event]
    failures: list[tuple[int, DecodeError]]

    def split(self) -> tuple[_Work, _Work]:
        """Cuts the slice in two halves by stream sequence."""
        half = len(self.records) // 2
        mid = self.records[half - 1].seq
        return (
            _Work(self.records[:half], [e for e in self.events if e.seq <= mid],
                  [f for f in self.failures if f[0] <= mid]),
            _Work(self.records[half:], [e for e in self.events if e.seq > mid],
                  [f for f in self.failures if f[0] > mid]),
        )


class _ProjectionFailed(Exception):
    """One projection's writes failed inside the batch transaction."""

    def __init__(self, projection: str, error: BaseException) -> None:
        super().__init__(f"{projection}: {error}")
        self.projection = projection
        self.error = error


class BatchApplier:
    """Applies batches to one read-model file; not thread-safe (one batch at a time)."""

    def __init__(
        self,
        db: ReadModelDb,
        projections: Sequence[Projection] | None = None,
        strict: bool = False,
        codec: EventCodec = CODEC,
    ) -> None:
        self.db = db
        self.projections = list(projections) if projections is not None else default_projections()
        self.strict = strict
        self.codec = codec
        stored = db.positions()
        self.positions = {p.name: stored.get(p.name, 0) for p in self.projections}
        self._reset()
        if not db.read_only:
            self._create_checkpoints()
        # The table now holds the rows read above and this applier's own. Usually those are
        # one set: then the update needs no filter (and no parameters), 0.8 of its 2.0 ms.
        self._all_checkpoints = set(stored) <= set(self.positions)

    @property
    def position(self) -> int:
        """The stream sequence every projection has applied."""
        return min(self.positions.values(), default=0)

    def apply(self, records: Sequence[RecordedEvent], stream_head: int,
              cutoff: datetime | None = None) -> BatchResult:
        """Applies the messages past the checkpoint (up to ``cutoff``, by ``occurred_at``)
        in one transaction with its checkpoints."""
        work, stopped = self._prepare(records, cutoff)
        if not work.records:
            return BatchResult(0, self.position, 0, stopped)
        head = max(stream_head, work.records[-1].seq)
        try:
            rejected = self._apply_isolating(work, head)
        except (duckdb.Error, MemoryError) as error:
            if is_memory_error(error):
                raise DatabaseStrained(f"the batch from seq {work.records[0].seq} needs more "
                                       f"memory than is free: {_first_line(error)}") from error
            raise
        return BatchResult(len(work.records), self.position, rejected, stopped)

    def _prepare(self, records: Sequence[RecordedEvent], cutoff: datetime | None
                 ) -> tuple[_Work, bool]:
        work = _Work([], [], [])
        floor = self.position
        for record in records:
            if record.seq <= floor:
                continue  # redelivered: already applied
            try:
                event = decode(record, self.codec)
            except DecodeError as error:
                work.records.append(record)
                work.failures.append((record.seq, error))
                continue
            if cutoff is not None and event.when > cutoff:
                return work, True
            work.records.append(record)
            work.events.append(event)
        return work, False

    def _apply_isolating(self, work: _Work, head: int) -> int:
        try:
            return self._commit(work, head, {})
        except _ProjectionFailed as failed:
            self._halt_unless_data_error(failed, work)
            if len(work.records) == 1:
                return self._commit_skipping(work, head, failed)
            left, right = work.split()
            return self._apply_isolating(left, head) + self._apply_isolating(right, head)

    def _commit_skipping(self, work: _Work, head: int, failed: _ProjectionFailed) -> int:
        """Applies one event, every projection that fails on it skipping it."""
        skipped: dict[str, BaseException] = {}
        while True:
            skipped[failed.projection] = failed.error
            try:
                return self._commit(work, head, skipped)
            except _ProjectionFailed as again:
                self._halt_unless_data_error(again, work)
                failed = again

    def _halt_unless_data_error(self, failed: _ProjectionFailed, work: _Work) -> None:
        if is_memory_error(failed.error):
            raise failed.error  # the whole batch is retried (see apply), nothing is skipped
        if self.strict or isinstance(failed.error, _HALTING):
            seq = work.records[0].seq
            raise ProjectionHalted(
                f"projection {failed.projection} halted in the batch from seq {seq}: "
                f"{_first_line(failed.error)}", seq) from failed.error

    def _commit(self, work: _Work, head: int, skipped: dict[str, BaseException]) -> int:
        """Applies a slice and its checkpoints in one transaction; returns events skipped."""
        con = self.db.con
        sink = ErrorSink(self.strict)
        con.execute("BEGIN")
        try:
            for seq, error in work.failures:
                sink.reject("all", seq, None, error)
            self._apply_projections(con, work, sink, skipped)
            insert_rows(con, "projection_errors", _ERROR_COLUMNS,
                        [_error_row(r) for r in sink.rejected])
            last_seq = work.records[-1].seq
            self._write_checkpoints(con, last_seq, head)
            con.execute("COMMIT")
        except BaseException:
            self._reset()
            _rollback(con)
            raise
        self.positions = {name: max(seq, last_seq) for name, seq in self.positions.items()}
        return len({r.seq for r in sink.rejected})

    def _apply_projections(self, con: duckdb.DuckDBPyConnection, work: _Work, sink: ErrorSink,
                           skipped: dict[str, BaseException]) -> None:
        shared = Batch(work.events)
        first = work.records[0].seq
        for projection in self.projections:
            if projection.name in skipped:
                event = work.events[0] if work.events else None
                sink.reject(projection.name, first, event, skipped[projection.name])
                continue
            position = self.positions[projection.name]
            # Usually every projection is at the same place: share one batch (and grouping).
            batch = shared if position < first else Batch(
                [e for e in work.events if e.seq > position])
            _apply_one(con, projection, batch, sink)

    def _reset(self) -> None:
        for projection in self.projections:
            projection.reset()

    def _write_checkpoints(self, con: duckdb.DuckDBPyConnection, last_seq: int, head: int) -> None:
        # One plain UPDATE (every row exists from the start): cheaper than an upsert.
        now = datetime.now(UTC).isoformat()
        if self._all_checkpoints:
            con.execute(  # integers and our own clock's ISO text: nothing to quote
                f"UPDATE checkpoints SET last_seq = greatest(last_seq, {int(last_seq)}), "
                f"stream_head = {int(head)}, updated_at = TIMESTAMPTZ '{now}'")
            return
        con.execute(
            "UPDATE checkpoints SET last_seq = greatest(last_seq, $seq), stream_head = $head, "
            "updated_at = CAST($now AS TIMESTAMPTZ) WHERE projection IN "
            "(SELECT unnest(CAST($names AS VARCHAR[])))",
            {"seq": last_seq, "head": head, "now": now, "names": list(self.positions)})

    def _create_checkpoints(self) -> None:
        """Adds a checkpoint row (at 0) for every projection that has none yet."""
        missing = [{"projection": name, "last_seq": 0, "stream_head": 0,
                    "updated_at": datetime.now(UTC).isoformat()}
                   for name in self.positions if name not in self.db.positions()]
        if missing:
            con = self.db.con
            con.execute("BEGIN")
            try:
                upsert_rows(con, "checkpoints", _CHECKPOINT_COLUMNS, missing, ("projection",))
                con.execute("COMMIT")
            except BaseException:
                _rollback(con)
                raise


def _apply_one(con: duckdb.DuckDBPyConnection, projection: Projection, batch: Batch,
               sink: ErrorSink) -> None:
    try:
        projection.apply(con, batch, sink)
    except ProjectionHalted:
        raise
    except Exception as error:
        raise _ProjectionFailed(projection.name, error) from error


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error as error:
        if is_memory_error(error):
            raise  # the transaction is gone with the memory; apply() reports the strain
        raise ProjectionHalted(f"the read-model database failed: {_first_line(error)}") from error


def _error_row(rejected: RejectedEvent) -> dict[str, object]:
    return asdict(rejected)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__

