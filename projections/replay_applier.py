"""A replay's applier: ``python -m projections.replay_applier FILE [UNTIL [UNTIL_SEQ]]``.

It builds the read models into FILE from the batches its reader writes to its stdin
(``projections.replay_frames``), with a GIL of its own: the reader keeps taking events
off NATS while this process decodes and applies them, one batch after the other in one
thread. A worker thread applying one batch while this one decoded the next gained
nothing: DuckDB holds the GIL while it scans an Arrow table, so the two took turns,
and the switching cost more than it saved (200,000 events read from a file, three
alternating runs: 6.2-6.8 s in one thread against 6.9-8.1 s with the worker; the same
read models, table for table). Only the frames are read off stdin by a thread of their
own, so the reader is not held back while a batch applies. Input that ends before the
end frame, or cannot be read, leaves the file as far as it got, and the process exits
non-zero with the reason as the last line on stderr (no ``D`` line); after the end frame,
the bounds it was built to are noted in the file (``record_build``), which is then
checkpointed and closed.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, TextIO

from services.gc_tuning import freeze_started_process, tune_for_service
from services.store import RecordedEvent

from .applier import BatchApplier, BatchResult
from .database import ReadModelDb
from .models import REPLAY_CACHE_ROWS, default_projections
from .replay_frames import read_batches
from .schema import record_build

__all__ = ["apply_stream", "main", "own_stdout"]


class _Reporter:
    def __init__(self, out: TextIO) -> None:
        self._out = out
        self.position = 0

    def batch(self, result: BatchResult) -> bool:
        """Reports one applied batch; True when a time bound stopped the replay there."""
        self.position = result.last_seq
        self._out.write(f"{'S' if result.stopped else 'P'} {result.last_seq}\n")
        self._out.flush()
        return result.stopped


class _Frames:
    """The reader's frames, read off stdin by a thread of their own into a bounded queue.

    Two frames deep (with the pipe's 1 MiB behind them): a deeper queue would only hold
    more events in memory, decoded into objects, without making the applier any faster.
    """

    def __init__(self, source: BinaryIO, depth: int = 2) -> None:
        self._queue: queue.Queue[tuple[list[RecordedEvent], int] | None] = queue.Queue(depth)
        self._failed: BaseException | None = None
        """Why the frames stopped before the end frame, raised once every frame is applied."""
        self._reading = threading.Thread(target=self._read, args=(source,), daemon=True,
                                         name="replay-frames")
        self._reading.start()
        self._ended = False

    def _read(self, source: BinaryIO) -> None:
        try:
            for frame in read_batches(source):
                self._queue.put(frame)
        except BaseException as error:  # whatever it is, the applying thread raises it
            self._failed = error
        finally:
            self._queue.put(None)

    def _end(self) -> None:
        """The end of the frames: an error when they stopped short of the end frame."""
        self._ended = True
        if self._failed is not None:
            raise self._failed

    def batches(self, most: int) -> Iterator[tuple[list[RecordedEvent], int]]:
        """Yields everything that has arrived as one batch (at least one frame, at most about
        ``most`` events): the longer an apply takes, the bigger the next batch."""
        while not self._ended:
            frame = self._queue.get()
            if frame is None:
                self._end()
                return
            records, head = frame
            ends = False
            while len(records) < most:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    ends = True
                    break
                records = records + more[0]
                head = more[1]
            yield records, head
            if ends:
                self._end()


def apply_stream(db: ReadModelDb, source: BinaryIO, out: TextIO,
                 until: datetime | None = None, most: int = 5_000) -> int:
    """Applies every batch of ``source`` in turn; returns the position.

    ``most`` bounds the peak RSS (measured with two batches decoded at once): 10,000
    with two frames queued measured 316 MB for this process on a 300k-event replay,
    against 382 MB at 20,000 with four, at the same speed within noise (23.9 and 22.4 s);
    on 1M events 5,000 held 17 MB less than 10,000 (366 against 383 MB, 53.6 and 51.5 s).
    """
    applier = BatchApplier(db, default_projections(REPLAY_CACHE_ROWS))
    report = _Reporter(out)
    for records, head in _Frames(source).batches(most):
        if report.batch(applier.apply(records, head, until)):
            break
    return report.position


def main(argv: list[str]) -> int:
    """Builds into ``argv[0]``, time-bounded by the ISO time ``argv[1]`` and noted as
    built to the sequence ``argv[2]`` (each when given and not empty)."""
    until = datetime.fromisoformat(argv[1]) if len(argv) > 1 and argv[1] else None
    until_seq = int(argv[2]) if len(argv) > 2 and argv[2] else None
    # Collection was 15 % of a replay's CPU: the young generation collected less often,
    # and what is loaded by now frozen out of every later walk.
    tune_for_service()
    freeze_started_process()
    reports = own_stdout()
    db = ReadModelDb.open_writer(Path(argv[0]))
    try:
        position = apply_stream(db, sys.stdin.buffer, reports, until)
        record_build(db.con, position, until_seq, until)
    finally:
        db.close()
    reports.write(f"D {position}\n")
    reports.flush()
    return 0


def own_stdout() -> TextIO:
    """Takes stdout for this process's reports alone; whatever else writes to file
    descriptor 1 (a library's C code included) goes to stderr instead."""
    reports = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return reports


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
