"""Read models rebuilt == live on the real service's workload: `python tests/determinism_soak.py`.

Each round drives the demo's multi-agent workload (random seed) through the whole
service with its live projector, then kills a projector process with SIGKILL inside
batches of random sizes and restarts it, rebuilds from the log, and compares every table
of the three files by hash. Not part of the suite (a round takes 15-20 s); the suite runs
the same check on a random synthetic history (tests/integration/projections/test_determinism.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
from pathlib import Path

import nats
import nats.js.errors

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from projections import ReadModelDb, build_read_models  # noqa: E402
from projections.runtime import Projector, ProjectorConfig  # noqa: E402
from services.bootstrap import serve  # noqa: E402
from services.demo import run_workload  # noqa: E402
from services.embedded_nats import EmbeddedNats  # noqa: E402
from services.sdk import Client  # noqa: E402
from services.settings import Settings  # noqa: E402
from services.store import JetStreamEventStore  # noqa: E402
from tests.support.projector_proc import kill_and_restart  # noqa: E402
from tests.support.read_side import table_digests  # noqa: E402


async def one_round(url: str, work: Path, seed: int) -> tuple[int, list[str]]:
    """Returns the events written and the tables that differ (none, if all is well)."""
    rng = random.Random(seed)
    settings = Settings(nats_url=url, data_dir=work / "live", stream=f"SOAK_{seed}")
    nc = await nats.connect(url)
    try:
        async with serve(settings, url):
            await run_workload(Client(nc), runs=rng.randint(4, 12),
                               workers=rng.randint(2, 6), seed=seed)
        store = JetStreamEventStore(nc, stream=settings.stream)
        db = ReadModelDb.open_writer(settings.duckdb_path)  # the policies' last events
        await Projector(store, db, ProjectorConfig(batch_size=rng.randint(1, 50))).catch_up()
        db.close()
        last = await store.last_seq()
        kill_and_restart(url, store, work / "killed.duckdb", last, rng)
        rebuilt = await build_read_models(store, work / "rebuilt.duckdb")
        expected = table_digests(rebuilt.path)
        differ = [f"{name}:{table}" for name, path in (("live", settings.duckdb_path),
                                                       ("killed", work / "killed.duckdb"))
                  for table, digest in table_digests(path).items()
                  if expected.get(table) != digest]
        return last, differ
    finally:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_stream(settings.stream)
        await nc.close()


async def main(rounds: int) -> int:
    """Runs the rounds on an embedded nats-server and prints one line each."""
    failures = 0
    with tempfile.TemporaryDirectory() as tmp, EmbeddedNats(Path(tmp) / "nats") as server:
        for n in range(rounds):
            seed, started = random.randrange(2**31), time.monotonic()
            events, differ = await one_round(server.url, Path(tmp) / f"round{n}", seed)
            failures += bool(differ)
            print(f"round {n + 1}/{rounds} seed {seed}: {events} events, "
                  f"{'DIFFERENT: ' + ', '.join(differ) if differ else 'all tables equal'} "
                  f"({time.monotonic() - started:.1f} s)", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    sys.exit(asyncio.run(main(parser.parse_args().rounds)))
