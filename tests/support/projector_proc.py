"""A projector in its own process, for crash tests: ``python -m tests.support.projector_proc``.

It prints ``BEGIN <first seq>`` (flushed) just before each batch transaction starts and
``AT <position>`` after it commits, so a test can ``kill -9`` it in the middle of one;
it exits 0 once the read models reach ``--until``. ``start_projector``,
``kill_inside_a_batch`` and ``kill_and_restart`` drive it from a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nats

from projections.applier import BatchApplier
from projections.database import ReadModelDb
from projections.runtime import Projector, ProjectorConfig
from services.store import JetStreamEventStore, RecordedEvent

_commit = BatchApplier.apply
_ROOT = Path(__file__).resolve().parents[2]


def start_projector(nats_url: str, store: JetStreamEventStore, db: Path, until: int,
                    batch: int = 150) -> subprocess.Popen[str]:
    """A projector process writing ``db`` until ``until``, in batches of at most ``batch``."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.projector_proc", "--nats", nats_url,
         "--stream", store.stream, "--prefix", store.subject_prefix, "--db", str(db),
         "--until", str(until), "--batch", str(batch)],
        cwd=_ROOT, stdout=subprocess.PIPE, text=True,
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


def _announced(self: BatchApplier, records: Sequence[RecordedEvent], head: int,
               cutoff: Any = None) -> Any:
    print(f"BEGIN {records[0].seq if records else 0}", flush=True)
    result = _commit(self, records, head, cutoff)
    print(f"AT {result.last_seq}", flush=True)
    return result


def kill_and_restart(nats_url: str, store: JetStreamEventStore, path: Path, last: int,
                     rng: random.Random) -> None:
    """Three projector lives killed -9 inside a batch, then one to the end; random batch sizes."""
    killed_at = []
    for _ in range(3):  # each life takes at most a quarter of the log
        batch = rng.randint(1, max(1, last // 20))
        killed_at.append(kill_inside_a_batch(start_projector(nats_url, store, path, last, batch),
                                             rng.randint(1, 5)))
    assert killed_at == sorted(killed_at)  # each life went on from its checkpoint
    final = start_projector(nats_url, store, path, last, rng.randint(20, 500))
    out, _ = final.communicate(timeout=120)
    assert final.returncode == 0, out


async def _main(args: argparse.Namespace) -> int:
    BatchApplier.apply = _announced  # type: ignore[method-assign, assignment]
    nc = await nats.connect(args.nats)
    store = JetStreamEventStore(nc, stream=args.stream, subject_prefix=args.prefix)
    db = ReadModelDb.open_writer(Path(args.db))
    # Fixed batches (no growth with the lag): each life must stop inside the log's first part.
    config = ProjectorConfig(batch_size=args.batch, max_batch_size=args.batch, linger_s=0.01)
    projector = Projector(store, db, config)
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
