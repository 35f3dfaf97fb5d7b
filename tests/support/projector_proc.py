"""A projector in its own process, for crash tests: ``python -m tests.support.projector_proc``.

It prints ``BEGIN <first seq>`` (flushed) just before each batch transaction starts and
``AT <position>`` after it commits, so a test can ``kill -9`` it in the middle of one;
it exits 0 once the read models reach ``--until``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nats

from projections.applier import BatchApplier
from projections.database import ReadModelDb
from projections.runtime import Projector, ProjectorConfig
from services.store import JetStreamEventStore, RecordedEvent

_commit = BatchApplier.apply


def _announced(self: BatchApplier, records: Sequence[RecordedEvent], head: int,
               cutoff: Any = None) -> Any:
    print(f"BEGIN {records[0].seq if records else 0}", flush=True)
    result = _commit(self, records, head, cutoff)
    print(f"AT {result.last_seq}", flush=True)
    return result


async def _main(args: argparse.Namespace) -> int:
    BatchApplier.apply = _announced  # type: ignore[method-assign, assignment]
    nc = await nats.connect(args.nats)
    store = JetStreamEventStore(nc, stream=args.stream, subject_prefix=args.prefix)
    db = ReadModelDb.open_writer(Path(args.db))
    projector = Projector(store, db, ProjectorConfig(batch_size=args.batch, linger_s=0.01))
    task = asyncio.create_task(projector.run())
    try:
        await projector.wait_for_seq(args.until, timeout_s=60.0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        db.close()
        await nc.close()
    print("DONE", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one projector until ``--until``."""
    parser = argparse.ArgumentParser()
    for flag in ("--nats", "--stream", "--prefix", "--db"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--until", type=int, required=True)
    parser.add_argument("--batch", type=int, default=200)
    return asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
